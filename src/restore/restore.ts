// `stasis restore`: read and check every image, open the file objects, create the task with
// its pid, rebuild it, let it go. A failure at any point kills what was created, so a failed
// restore leaves no process behind.
import { detach, kill, waitPid } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { readImageSet } from './read-images.js';
import { OpenFiles } from './open-files.js';
import { createRootTask } from './create-task.js';
import { restoreTask } from './restore-task.js';
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
  const progress = (phase: string) => opts.onProgress?.({ phase, done: 0, total: 0 });
  progress('reading images');
  const set = readImageSet(opts.imagesDir);
  if (set.tasks.length !== 1) throw new StasisError('E_UNSUPPORTED', `The image holds ${set.tasks.length} tasks; only single tasks are supported yet`);
  const task = set.tasks[0]!;
  const wanted = [...new Set(task.fdinfos.map((d) => d.id))].map((id) => set.files.get(id)!);
  progress('opening files');
  const files = OpenFiles.open(wanted, { imagesDir: set.dir, shellJob: opts.shellJob ?? false, files: set.files });
  let pid = 0;
  try {
    progress('creating tasks');
    const child = createRootTask(task.pstree.pid);
    pid = child.pid;
    progress('restoring memory');
    const tids = restoreTask({ set, files }, task, child);
    for (const tid of tids) detach(tid);
  } catch (err) {
    if (pid) {
      kill(pid, 9);
      waitExit(pid);
    }
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore pid ${task.pstree.pid}: ${(err as Error).message}`, { cause: err });
  } finally {
    files.close();
  }
  const restoredMs = performance.now() - t0;
  if (opts.detach) return { pid, pids: [pid], totalMs: restoredMs };
  return { pid, pids: [pid], exit: waitExit(pid), totalMs: restoredMs };
}
