// `stasis restore`: read and check every image, open the file objects once, build the tree
// of stub tasks with their pids, turn each into its task, let them all go. A failure at any
// point kills what was created, so a failed restore leaves no process behind.
import { detach, kill, waitPid, probeTimerRestoreIds } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { readImageSet } from './read-images.js';
import { OpenFiles } from './open-files.js';
import { readPipeData, readUnixSkState } from '../files/index.js';
import { createTree } from './create-tree.js';
import type { NewTask } from './create-task.js';
import { restoreTask } from './restore-task.js';
import { ShmemObjects } from './shmem-objects.js';
import { readLocks, takeFileLocks } from './restore-locks.js';
import type { ExitStatus, RestoreOptions, RestoreResult } from '../api/types.js';

export function waitExit(pid: number): ExitStatus {
  for (;;) {
    const w = waitPid(pid);
    if (!w) continue;
    if (w.kind === 'exited') return { kind: 'exited', code: w.code };
    if (w.kind === 'signaled') return { kind: 'signaled', signal: w.signal };
  }
}

export function restore(opts: RestoreOptions): RestoreResult {
  const t0 = performance.now();
  const progress = (phase: string, done = 0, total = 0) => opts.onProgress?.({ phase, done, total });
  progress('reading images');
  const set = readImageSet(opts.imagesDir);
  const locks = readLocks(set.dir);
  const root = set.order[0]!.pid;
  const ids = new Set(set.tasks.flatMap((t) => t.fdinfos.map((d) => d.id)));
  // Shared memory before the files: an open memfd is a file of a shared memory object.
  progress('shared memory');
  const shmem = ShmemObjects.create(set.shmem);
  progress('opening files');
  let files: OpenFiles;
  try {
    files = OpenFiles.open([...ids].map((id) => set.files.get(id)!), {
      imagesDir: set.dir, shellJob: opts.shellJob ?? false, files: set.files, pipes: readPipeData(set.dir), memfds: shmem,
      unix: readUnixSkState(set.dir),
    });
  } catch (err) {
    shmem.close();
    throw err;
  }
  const created = new Map<number, NewTask>();
  try {
    takeFileLocks(locks, set, files);
    progress('creating tasks');
    createTree(set, created);
    const tids: number[] = [];
    const timerRestoreIds = set.tasks.some((t) => t.core.tc?.timers?.posix.length) && probeTimerRestoreIds();
    const ctx = { set, files, shmem, locks, epollsFilled: new Set<number>(), timerRestoreIds };
    set.tasks.forEach((t, i) => {
      progress('restoring tasks', i, set.tasks.length);
      tids.push(...restoreTask(ctx, t, created.get(t.pstree.pid)!));
    });
    shmem.seal();
    for (const tid of tids) detach(tid);
  } catch (err) {
    // Children first: a parent killed first would hand them to init before we reap them.
    // Only what this restore created: the root's pid may belong to someone else's task.
    for (const pid of [...created.keys()].reverse()) {
      try {
        kill(pid, 9);
        waitExit(pid);
      } catch {
        /* gone, or reaped already */
      }
    }
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore pid ${root}: ${(err as Error).message}`, { cause: err });
  } finally {
    shmem.close();
    files.close();
  }
  const restoredMs = performance.now() - t0;
  const pids = set.order.map((e) => e.pid);
  if (opts.detach) return { pid: root, pids, totalMs: restoredMs };
  return { pid: root, pids, exit: waitExit(root), totalMs: restoredMs };
}
