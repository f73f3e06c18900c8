// pidfds (CRIU's pidfd.c): fdinfo's Pid: names the process (as stasis's /proc sees it; -1
// once it was reaped), the file's flags hold PIDFD_NONBLOCK and PIDFD_THREAD. A pidfd of a
// task of the tree is opened again on it once the tree exists; one of a reaped process on a
// stand-in that then dies as it did (dead-pids.ts), one per pidfs inode, as CRIU does.
// A pidfd of a thread that does not lead its process (PIDFD_THREAD) is opened on the leader
// with the same flags, and put over by the real one once the thread exists (threads are made
// after their process's fds: restore/thread-pidfds.ts), so only that process may hold it, and
// no epoll may watch it. Refused: a pidfd of a process outside the tree (nothing brings it
// back), thread pidfds held otherwise, and flags stasis does not know.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FdinfoEntry, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { closeFd, fcntl, pidfdExitStatus, pidfdOpen, withTaskFd } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';
import { describeStatus } from './dead-pids.js';

const O_RDWR = 2, O_NONBLOCK = 0o4000, PIDFD_THREAD = 0o200; // PIDFD_THREAD is O_EXCL
const F_GETFL = 3, SIGKILL = 9;

export const pidfd = {
  name: 'pidfd',
  type: FdTypes.PIDFD,
  detect: (p) => p.link === 'anon_inode:[pidfd]',
  dump: (p, ctx, id) => {
    const what = `fd ${p.fd} of pid ${p.pid} (a pidfd)`;
    const flags = p.info.flags & ~O_RDWR;
    if (flags & ~(O_NONBLOCK | PIDFD_THREAD)) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: its flags 0${flags.toString(8)} hold some stasis cannot set again`);
    const target = Number(p.info.extra.get('Pid') ?? NaN);
    if (!Number.isInteger(target)) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: fdinfo names no Pid`);
    const base = { id, ino: p.stat.ino, flags, fown: emptyFown() };
    if (target === -1) {
      // Reaped: how it died is all that is left of it (and only where pidfs keeps it).
      const status = withTaskFd(p.pid, p.fd, pidfdExitStatus);
      if (status !== undefined && (status & 0x80) !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: its process died with ${describeStatus(status)}, which stasis cannot make a process do again`);
      const attr = status !== undefined ? { exitCode: status } : undefined;
      return create(FileEntrySchema, { type: FdTypes.PIDFD, id, pidfd: { ...base, nspid: -1, ...(attr ? { attr } : {}) } });
    }
    const t = ctx.treePid?.(target);
    if (t === undefined) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it refers to pid ${target}, which is not in the tree, so stasis cannot bring its process back`);
    return create(FileEntrySchema, { type: FdTypes.PIDFD, id, pidfd: { ...base, nspid: t } });
  },
  open: (e, ctx) => {
    const f = e.pidfd;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is a pidfd without its entry`);
    if (f.flags & ~(O_NONBLOCK | PIDFD_THREAD)) throw new StasisError('E_UNSUPPORTED', `Cannot restore pidfd ${e.id}: its flags 0${f.flags.toString(8)} hold some stasis cannot set`);
    let pid: number | undefined;
    const leader = f.flags & PIDFD_THREAD ? ctx.threadLeader?.(f.nspid) : undefined;
    if (leader !== undefined) {
      // Its thread is made later: the leader's stands in at its fds until then.
      pid = ctx.taskPid?.(leader);
      if (pid === undefined) throw new StasisError('E_CORRUPT', `Cannot restore pidfd ${e.id}: the process of thread ${f.nspid} is not a task of the images`);
    } else if (f.nspid === -1) {
      if (!ctx.deadPids) throw new StasisError('E_UNSUPPORTED', `Cannot restore pidfd ${e.id}: it refers to a dead process, and no stand-in can be made for it here`);
      pid = ctx.deadPids.pidFor(f.ino, f.attr?.exitCode ?? SIGKILL);
    } else {
      pid = ctx.taskPid?.(f.nspid);
      if (pid === undefined) throw new StasisError('E_CORRUPT', `Cannot restore pidfd ${e.id}: it refers to pid ${f.nspid}, which is not a task of the images`);
    }
    const fd = pidfdOpen(pid, f.flags);
    // pidfd_open() takes the flags as they were: read them back rather than trust it did.
    const got = fcntl(fd, F_GETFL) & ~O_RDWR & ~0o2000000;
    if (got !== f.flags) {
      closeFd(fd);
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore pidfd ${e.id}: it has flags 0${got.toString(8)}, not 0${f.flags.toString(8)}`);
    }
    return { status: 'done', fd };
  },
  finish: (ctx) => ctx.deadPids?.end(),
} satisfies FileKind;

/** A task as the images name it (its pid, its threads' tids) and its fds. */
export interface PidfdHolder {
  pid: number;
  tids: number[];
  fdinfos: FdinfoEntry[];
}

/**
 * Why the pidfds of threads that do not lead their process cannot be restored (undefined:
 * they can): one is held by another process, or watched by an epoll of its own process.
 */
export function threadPidfdTrouble(tasks: PidfdHolder[], files: Map<number, FileEntry>): string | undefined {
  const owner = new Map(tasks.flatMap((t) => t.tids.filter((tid) => tid !== t.pid).map((tid) => [tid, t.pid] as const)));
  const threadOf = (id: number) => {
    const f = files.get(id)?.pidfd;
    return f && f.flags & PIDFD_THREAD ? owner.get(f.nspid) : undefined;
  };
  for (const t of tasks) {
    for (const d of t.fdinfos) {
      const o = threadOf(d.id);
      if (o === undefined) continue;
      const tid = files.get(d.id)!.pidfd!.nspid;
      if (o !== t.pid) return `fd ${d.fd} of pid ${t.pid} is a pidfd of thread ${tid} of pid ${o} (PIDFD_THREAD): stasis restores such a pidfd only in the thread's own process`;
      for (const e of t.fdinfos) {
        const watched = files.get(e.id)?.epfd?.tfd.find((w) => w.tfd === d.fd);
        if (watched) return `fd ${d.fd} of pid ${t.pid}, a pidfd of its thread ${tid} (PIDFD_THREAD), is watched by epoll fd ${e.fd}: stasis cannot restore a thread's pidfd in an epoll yet`;
      }
    }
  }
  return undefined;
}
