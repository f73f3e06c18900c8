// Taking back the locks and leases of filelocks.img, each by the task the image names, from
// inside it (injected flock/fcntl) once its fds are installed, as CRIU's restore_file_locks
// does: the kernel records the pid that takes a flock or a lease (/proc/locks and fdinfo show
// it), and F_SETLEASE makes the taker the file's owner for the break signal, so a lock
// taken by stasis would name stasis. POSIX locks belong to the process anyway (installing fds
// closes fds, and a close drops a process's POSIX locks: they come after). A lease that was
// being broken is taken by the file's access mode, then broken again by an open from stasis
// that the lease refuses (O_NONBLOCK: EWOULDBLOCK), as CRIU's restore_breaking_file_lease does;
// its break signal is drained with the stub's other signals, before the image's are queued.
import type { FileLockEntry } from '../image/gen/stasis/file-lock_pb.js';
import { readImage, imageExists } from '../image/index.js';
import {
  flockStruct, errnoName, openat, closeFd, SyscallError, LOCK_SH, LOCK_EX, LOCK_NB, F_SETLK, F_OFD_SETLK, type Injector,
} from '../sys/index.js';
import { FL_FLOCK, FL_LEASE, FL_OFD, FL_POSIX, F_RDLCK, F_UNLCK, F_WRLCK, LEASE_BREAKING } from '../files/file-locks.js';
import { StasisError } from '../errors.js';

const F_GETFL = 3, F_SETLEASE = 1024, O_ACCMODE = 3, O_RDONLY = 0, O_WRONLY = 1, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const EAGAIN = 11;

export function readLocks(dir: string): FileLockEntry[] {
  if (!imageExists(dir, 'file-locks', undefined)) return [];
  const locks = readImage(dir, 'file-locks', undefined);
  for (const l of locks) {
    const type = l.flag === FL_LEASE ? l.type & ~LEASE_BREAKING : l.type;
    const types = l.flag === FL_LEASE && l.type & LEASE_BREAKING ? [F_RDLCK, F_UNLCK] : [F_RDLCK, F_WRLCK];
    if (![FL_POSIX, FL_FLOCK, FL_OFD, FL_LEASE].includes(l.flag) || !types.includes(type)) {
      throw new StasisError('E_UNSUPPORTED', `filelocks.img holds a lock of kind ${l.flag}, type ${l.type} (pid ${l.pid}, fd ${l.fd}), which stasis cannot restore`);
    }
  }
  return locks;
}

function what(l: FileLockEntry): string {
  const kind = l.flag === FL_FLOCK ? 'flock' : l.flag === FL_OFD ? 'OFD lock' : l.flag === FL_LEASE ? 'lease' : 'POSIX lock';
  const type = l.flag === FL_LEASE && l.type & LEASE_BREAKING
    ? `being broken to ${(l.type & ~LEASE_BREAKING) === F_UNLCK ? 'none' : 'read'}`
    : l.type === F_WRLCK ? 'write' : 'read';
  const range = l.flag === FL_POSIX || l.flag === FL_OFD ? ` ${l.start}+${l.len === 0n ? 'EOF' : l.len}` : '';
  return `${kind} ${type}${range} of fd ${l.fd} of pid ${l.pid}`;
}

/** Every lock and lease of task `inj.pid` (`vpid` in the images: its pid in its own namespace), taken by the task itself. */
export function takeLocks(inj: Injector, locks: FileLockEntry[], vpid = inj.pid): void {
  for (const l of locks) {
    if (l.pid !== vpid) continue;
    inj.resetScratch();
    let r: bigint;
    switch (l.flag) {
      case FL_FLOCK:
        r = inj.call('flock', l.fd, (l.type === F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
        break;
      case FL_POSIX:
      case FL_OFD:
        r = inj.call('fcntl', l.fd, l.flag === FL_POSIX ? F_SETLK : F_OFD_SETLK, inj.put(flockStruct(l.type, l.start, l.len)));
        break;
      default:
        r = l.type & LEASE_BREAKING ? breakingLease(inj, l) : inj.call('fcntl', l.fd, F_SETLEASE, l.type);
    }
    if (r < 0n) {
      throw new StasisError('E_RESTORE_FAILED',
        `Cannot take back the ${what(l)}: ${errnoName(Number(-r))}${r === -BigInt(EAGAIN) ? ' (another process holds a conflicting lock or open file)' : ''}`);
    }
  }
}

/** The lease the file's access mode allows, then an open that starts breaking it to the image's type. */
function breakingLease(inj: Injector, l: FileLockEntry): bigint {
  const fl = inj.call('fcntl', l.fd, F_GETFL, 0);
  if (fl < 0n) return fl;
  const r = inj.call('fcntl', l.fd, F_SETLEASE, (Number(fl) & O_ACCMODE) === O_RDONLY ? F_RDLCK : F_WRLCK);
  if (r < 0n) return r;
  // Opening for writing breaks any lease; for reading, only a write lease (down to read).
  const breaker = (l.type & ~LEASE_BREAKING) === F_UNLCK ? O_WRONLY : O_RDONLY;
  try {
    closeFd(openat(-100, `/proc/${inj.pid}/fd/${l.fd}`, breaker | O_NONBLOCK | O_CLOEXEC));
  } catch (err) {
    if (err instanceof SyscallError && err.errno === EAGAIN) return 0n;
    throw new StasisError('E_RESTORE_FAILED', `Cannot break the ${what(l)} again: ${(err as Error).message}`, { cause: err });
  }
  throw new StasisError('E_RESTORE_FAILED', `Cannot break the ${what(l)} again: the open meant to break it found no lease`);
}
