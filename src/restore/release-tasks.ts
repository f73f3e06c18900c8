// The restore's last step: every thread of the tree is let go, and the restore returns only
// once each has been on a CPU since. PTRACE_DETACH wakes a stopped tracee with TIF_SIGPENDING
// set (__ptrace_unlink() -> ptrace_signal_wake_up()), which stays set until the thread runs and
// finds nothing pending; until then complete_signal()'s wants_signal() passes it over (it is
// neither on a CPU nor free of TIF_SIGPENDING). A kill() of the process right after a
// `restore -d` then went to another thread that had run already, where the dumped tree's
// leader, asleep with nothing pending, takes it: 6 of 30 such kills did.
import { detach } from '../sys/index.js';
import { parseSchedstat, readProcTextOrNull } from '../proc/index.js';
import type { Log } from '../log.js';

/** A thread held from its CPU that long (a loaded machine, SCHED_IDLE) is left to run when it can. */
const RUN_WAIT_MS = 2000;

/** How many times the thread was put on a CPU; undefined when it is gone or the kernel does not say (no CONFIG_SCHED_INFO). */
function timeslices(tid: number): number | undefined {
  const text = readProcTextOrNull(tid, 'schedstat');
  if (text === null) return undefined;
  try {
    return parseSchedstat(text).timeslices;
  } catch {
    return undefined; // a line this kernel writes otherwise: not waited for, as before
  }
}

/** Detaches every thread of `tids` (stopped under ptrace) and waits until each has run or is gone. */
export function releaseTasks(tids: number[], log: Log): void {
  const before = new Map<number, number>();
  for (const tid of tids) {
    const n = timeslices(tid);
    if (n !== undefined) before.set(tid, n);
  }
  for (const tid of tids) detach(tid);
  const until = Date.now() + RUN_WAIT_MS;
  let waiting = [...before.keys()];
  for (;;) {
    waiting = waiting.filter((tid) => (timeslices(tid) ?? Infinity) <= before.get(tid)!);
    if (!waiting.length) return;
    if (Date.now() > until) {
      log.warn(`threads ${waiting.join(', ')} did not get a CPU within ${RUN_WAIT_MS} ms of their release: a signal sent to their process now may be taken by another of its threads`);
      return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 0.1);
  }
}
