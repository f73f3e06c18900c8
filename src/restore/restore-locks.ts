// Taking back the advisory locks of filelocks.img. flock and OFD locks belong to the open
// file: stasis takes them on the file it opened, which the tasks then share. POSIX locks
// belong to the process: the task takes them itself, by an injected fcntl(F_SETLK), once
// its fds are installed (installing closes fds, and a close drops a process's POSIX locks).
import type { FileLockEntry } from '../image/gen/stasis/file-lock_pb.js';
import { readImage, imageExists } from '../image/index.js';
import {
  flockFd, setLockFd, flockStruct, errnoName, LOCK_SH, LOCK_EX, LOCK_NB, F_SETLK, F_OFD_SETLK, type Injector,
} from '../sys/index.js';
import { FL_FLOCK, FL_OFD, FL_POSIX, F_RDLCK, F_WRLCK } from '../files/file-locks.js';
import type { ImageSet } from './read-images.js';
import type { OpenFiles } from './open-files.js';
import { StasisError } from '../errors.js';

export function readLocks(dir: string): FileLockEntry[] {
  if (!imageExists(dir, 'file-locks', undefined)) return [];
  const locks = readImage(dir, 'file-locks', undefined);
  for (const l of locks) {
    if (![FL_POSIX, FL_FLOCK, FL_OFD].includes(l.flag) || (l.type !== F_RDLCK && l.type !== F_WRLCK)) {
      throw new StasisError('E_UNSUPPORTED', `filelocks.img holds a lock of kind ${l.flag}, type ${l.type} (pid ${l.pid}, fd ${l.fd}), which stasis cannot restore`);
    }
  }
  return locks;
}

const what = (l: FileLockEntry) =>
  `${l.flag === FL_FLOCK ? 'flock' : l.flag === FL_OFD ? 'OFD lock' : 'POSIX lock'} ${l.type === F_WRLCK ? 'write' : 'read'} ` +
  `${l.start}+${l.len === 0n ? 'EOF' : l.len} of fd ${l.fd} of pid ${l.pid}`;

/** flock and OFD locks, on stasis's own open files. */
export function takeFileLocks(locks: FileLockEntry[], set: ImageSet, files: OpenFiles): void {
  for (const l of locks) {
    if (l.flag === FL_POSIX) continue;
    const task = set.tasks.find((t) => t.pstree.pid === l.pid);
    const fdi = task?.fdinfos.find((d) => d.fd === l.fd);
    if (!fdi) throw new StasisError('E_CORRUPT', `filelocks.img names fd ${l.fd} of pid ${l.pid}, which the image lacks`);
    const fd = files.get(fdi.id);
    const r = l.flag === FL_FLOCK
      ? flockFd(fd, (l.type === F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB)
      : setLockFd(fd, F_OFD_SETLK, l.type, l.start, l.len);
    if (r < 0) throw new StasisError('E_RESTORE_FAILED', `Cannot take back the ${what(l)}: ${errnoName(-r)}${-r === 11 ? ' (another process holds a conflicting lock)' : ''}`);
  }
}

/** POSIX locks of one task, taken by the task itself. */
export function takePosixLocks(inj: Injector, locks: FileLockEntry[]): void {
  for (const l of locks) {
    if (l.flag !== FL_POSIX || l.pid !== inj.pid) continue;
    inj.resetScratch();
    const r = inj.call('fcntl', l.fd, F_SETLK, inj.put(flockStruct(l.type, l.start, l.len)));
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot take back the ${what(l)}: ${errnoName(Number(-r))}${r === -11n ? ' (another process holds a conflicting lock)' : ''}`);
  }
}
