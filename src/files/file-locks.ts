// Advisory locks and leases held through a task's fds, from the `lock:` lines of
// /proc/PID/fdinfo/N. The kernel prints there the locks taken through that open file and
// owned by this task (POSIX: its file table) or by the open file itself (flock, OFD, leases)
// (fs/locks.c, show_fd_locks), so an fd shared by dup or fork shows the same flock in every
// task: each lock is kept once, as CRIU's filelocks.img does, named by a (pid, fd) that
// holds it, the lock's creator where it holds one (flock and leases record the pid that took
// them: restore takes them in that task again, CRIU's note_file_lock prefers the creator too).
import { create } from '@bufbuild/protobuf';
import { FileLockEntrySchema, type FileLockEntry } from '../image/gen/stasis/file-lock_pb.js';
import { StasisError } from '../errors.js';
import type { FdProbe } from './kind.js';

// CRIU's criu/include/file-lock.h and F_RDLCK / F_WRLCK / F_UNLCK of <fcntl.h>.
export const FL_POSIX = 1, FL_FLOCK = 2, FL_OFD = 4, FL_LEASE = 8;
export const F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
/** A lease being broken: its type is the one it is broken to (F_GETLEASE), this bit or'd in. */
export const LEASE_BREAKING = 4;

export class LockCollector {
  readonly entries: FileLockEntry[] = [];
  /** The entry of each lock by what identifies it, and whether its pid is the lock's creator. */
  private readonly seen = new Map<string, { entry: FileLockEntry; creator: boolean }>();

  /**
   * Records the locks of fd `p`, whose open file is `fileId`. `leaseType` gives F_GETLEASE of
   * the fd: the type a breaking lease is being broken to, which fdinfo does not show.
   */
  add(p: FdProbe, fileId: number, leaseType?: () => number): void {
    for (const l of p.info.locks) {
      if (l.blocked) continue;
      const flag = l.kind === 'POSIX' ? FL_POSIX : l.kind === 'FLOCK' ? FL_FLOCK : l.kind === 'OFDLCK' ? FL_OFD : l.kind === 'LEASE' ? FL_LEASE : 0;
      const refuse = (why: string) =>
        new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: it holds a ${l.kind} lock (${l.mode} ${l.type}), ${why}`);
      let type: number;
      if (flag === FL_LEASE) {
        if (l.mode === 'ACTIVE' && l.type !== 'UNLCK') type = l.type === 'READ' ? F_RDLCK : F_WRLCK;
        else if (l.mode === 'BREAKING' && leaseType) type = leaseType() | LEASE_BREAKING;
        else throw refuse('which stasis cannot restore');
      } else {
        if (!flag || l.mode !== 'ADVISORY' || l.type === 'UNLCK') throw refuse('which stasis cannot restore');
        type = l.type === 'READ' ? F_RDLCK : F_WRLCK;
      }
      const len = l.end === null ? 0n : l.end + 1n - l.start;
      // POSIX locks belong to the process; the others to the open file.
      const owner = flag === FL_POSIX ? `pid ${p.pid}` : 'file';
      const key = `${owner} ${fileId} ${flag} ${type} ${l.start} ${len}`;
      const creator = l.pid === p.pid;
      const had = this.seen.get(key);
      if (had) {
        if (creator && !had.creator) {
          had.entry.pid = p.pid;
          had.entry.fd = p.fd;
          had.creator = true;
        }
        continue;
      }
      const entry = create(FileLockEntrySchema, { flag, type, pid: p.pid, fd: p.fd, start: l.start, len });
      this.entries.push(entry);
      this.seen.set(key, { entry, creator });
    }
  }
}
