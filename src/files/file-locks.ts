// Advisory locks held through a task's fds, from the `lock:` lines of /proc/PID/fdinfo/N.
// The kernel prints there the locks taken through that open file and owned by this task
// (POSIX: its file table) or by the open file itself (flock, OFD) (fs/locks.c,
// show_fd_locks), so an fd shared by dup or fork shows the same flock in every task: each
// lock is kept once, named by the first (pid, fd) seen, as CRIU's filelocks.img does.
import { create } from '@bufbuild/protobuf';
import { FileLockEntrySchema, type FileLockEntry } from '../image/gen/stasis/file-lock_pb.js';
import { StasisError } from '../errors.js';
import type { FdProbe } from './kind.js';

// CRIU's criu/include/file-lock.h and F_RDLCK / F_WRLCK of <fcntl.h>.
export const FL_POSIX = 1, FL_FLOCK = 2, FL_OFD = 4;
export const F_RDLCK = 0, F_WRLCK = 1;

export class LockCollector {
  readonly entries: FileLockEntry[] = [];
  private readonly seen = new Set<string>();

  /** Records the locks of fd `p`, whose open file is `fileId`. */
  add(p: FdProbe, fileId: number): void {
    for (const l of p.info.locks) {
      if (l.blocked) continue;
      const flag = l.kind === 'POSIX' ? FL_POSIX : l.kind === 'FLOCK' ? FL_FLOCK : l.kind === 'OFDLCK' ? FL_OFD : 0;
      if (!flag || l.mode !== 'ADVISORY' || l.type === 'UNLCK') {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: it holds a ${l.kind} lock (${l.mode} ${l.type}), which stasis cannot restore`);
      }
      const len = l.end === null ? 0n : l.end + 1n - l.start;
      // POSIX locks belong to the process; flock and OFD locks to the open file.
      const owner = flag === FL_POSIX ? `pid ${p.pid}` : 'file';
      const key = `${owner} ${fileId} ${flag} ${l.type} ${l.start} ${len}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.entries.push(create(FileLockEntrySchema, {
        flag, type: l.type === 'READ' ? F_RDLCK : F_WRLCK, pid: p.pid, fd: p.fd, start: l.start, len,
      }));
    }
  }
}
