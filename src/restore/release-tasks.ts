// Letting a tree's threads go so that, once this returns, each can take a signal as it could
// before it was stopped. PTRACE_DETACH wakes a stopped tracee with TIF_SIGPENDING set
// (__ptrace_unlink() -> ptrace_signal_wake_up()), which stays set until the thread runs and
// finds nothing pending; until then complete_signal()'s wants_signal() passes it over (it is
// neither on a CPU nor free of TIF_SIGPENDING). A kill() of the process right after a
// `restore -d` then went to another thread that had run already, where the dumped tree's
// leader, asleep with nothing pending, takes it: 6 of 30 such kills did. The same holds for
// a tree a dump lets go (--leave-running, or a failed dump): dump/freeze-tree.ts waits too.
import { detach } from '../sys/index.js';
import { timesliceCounts, waitUntilRan } from '../proc/index.js';
import type { Log } from '../log.js';

/** Detaches every thread of `tids` (stopped under ptrace) and waits until each has run or is gone. */
export function releaseTasks(tids: number[], log: Log): void {
  const before = timesliceCounts(tids);
  for (const tid of tids) detach(tid);
  waitUntilRan(before, log);
}
