// pidfds of threads that do not lead their process (PIDFD_THREAD). A task's threads are made
// after its fds are in (restore-task.ts), so such a pidfd was opened on the leader with the
// same flags (files/pidfd.ts): once the thread exists, the task opens the real one and puts
// it over that at each fd that holds the file (dup3: the fd numbers and close-on-exec stay).
// Only the thread's own process holds one (files/pidfd.ts checks).
import { type Injector, failedWith } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { threadPidfdTrouble } from '../files/index.js';
import type { ImageSet, TaskImages } from './read-images.js';

const O_CLOEXEC = 0o2000000;

/** The process (its pid in the images) of each thread that does not lead it, by tid. */
export function threadLeaders(set: ImageSet): Map<number, number> {
  return new Map(set.order.flatMap((e) => e.threads.filter((tid) => tid !== e.pid).map((tid) => [tid, e.pid] as const)));
}

/** Refuses, before anything is made, thread pidfds that cannot be put in place. */
export function checkThreadPidfds(set: ImageSet): void {
  const trouble = threadPidfdTrouble(set.tasks.map((t) => ({ pid: t.pstree.pid, tids: t.pstree.threads, fdinfos: t.fdinfos })), set.files);
  if (trouble) throw new StasisError('E_UNSUPPORTED', `Cannot restore ${set.dir}: ${trouble}`);
}

/**
 * Puts the pidfds of `t`'s own threads (made by now) at their fds: the task opens each itself,
 * by the tid the images give (its own pid namespace's), so no pidfd of stasis is needed.
 */
export function putThreadPidfds(inj: Injector, set: ImageSet, t: TaskImages): void {
  const mine = new Set(t.threads.map((th) => th.tid));
  const byFile = new Map<number, { tid: number; flags: number; fds: { fd: number; cloexec: boolean }[] }>();
  for (const d of t.fdinfos) {
    const f = set.files.get(d.id)?.pidfd;
    if (!f || !mine.has(f.nspid)) continue;
    const e = byFile.get(d.id) ?? { tid: f.nspid, flags: f.flags, fds: [] };
    e.fds.push({ fd: d.fd, cloexec: (d.flags & 1) !== 0 });
    byFile.set(d.id, e);
  }
  for (const [id, e] of byFile) {
    const fd = inj.call('pidfd_open', e.tid, e.flags);
    if (fd < 0n) throw new StasisError('E_RESTORE_FAILED', `Pid ${t.pstree.pid} cannot open the pidfd of its thread ${e.tid} (file ${id}): ${failedWith(fd)}`);
    for (const at of e.fds) {
      const r = inj.call('dup3', fd, at.fd, at.cloexec ? O_CLOEXEC : 0);
      if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Pid ${t.pstree.pid} cannot put the pidfd of its thread ${e.tid} at fd ${at.fd}: ${failedWith(r)}`);
    }
    inj.call('close', fd);
  }
}
