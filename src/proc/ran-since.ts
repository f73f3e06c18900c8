// Whether threads let go have been on a CPU since: the count of times each was put on one
// (schedstat's third field) grows. restore/release-tasks.ts says why a release waits for it.
import { parseSchedstat } from './schedstat.js';
import { readProcTextOrNull } from './read.js';
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

/** How many times each of `tids` has been on a CPU so far, for waitUntilRan(). */
export function timesliceCounts(tids: readonly number[]): Map<number, number> {
  const before = new Map<number, number>();
  for (const tid of tids) {
    const n = timeslices(tid);
    if (n !== undefined) before.set(tid, n);
  }
  return before;
}

/** Waits until each thread of `before` has been on a CPU since it was counted, or is gone (RUN_WAIT_MS at most, then a warning). */
export function waitUntilRan(before: Map<number, number>, log: Log | undefined): void {
  const until = Date.now() + RUN_WAIT_MS;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let waiting = [...before.keys()];
  for (;;) {
    waiting = waiting.filter((tid) => (timeslices(tid) ?? Infinity) <= before.get(tid)!);
    if (!waiting.length) return;
    if (Date.now() > until) {
      log?.warn(`threads ${waiting.join(', ')} did not get a CPU within ${RUN_WAIT_MS} ms of their release: a signal sent to their process now may be taken by another of its threads`);
      return;
    }
    Atomics.wait(nap, 0, 0, 0.1);
  }
}
