// /proc/PID/schedstat (and task/TID/schedstat): one line, `run_ns wait_ns timeslices`
// (Documentation/scheduler/sched-stats.rst): the time spent on a CPU, the time spent waiting
// for one, and how many times the task was put on a CPU. Present with CONFIG_SCHED_INFO.
import { ProcFormatError } from './proc-format-error.js';
import { decimal, decimalBig } from './scalars.js';

export interface ProcSchedstat {
  runNs: bigint;
  waitNs: bigint;
  /** Times the task was put on a CPU: it grows as soon as a task that was stopped runs again. */
  timeslices: number;
}

export function parseSchedstat(text: string): ProcSchedstat {
  const line = text.trimEnd();
  const f = line.split(' ');
  if (f.length !== 3) throw new ProcFormatError('schedstat', `${f.length} fields, not 3`, line);
  return {
    runNs: decimalBig(f[0], 'schedstat', 'run time', line),
    waitNs: decimalBig(f[1], 'schedstat', 'wait time', line),
    timeslices: decimal(f[2], 'schedstat', 'timeslices', line),
  };
}
