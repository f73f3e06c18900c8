// /proc/PID/timers: the task's POSIX timers (timer_create), four lines each, newest first
// (kernel/time/posix-timers.c, show_timer()):
//   ID: 0
//   signal: 10/0000000000001234      si_signo / sival_ptr (%px: the real value)
//   notify: signal/pid.812           signal|none|thread, then pid or tid (SIGEV_THREAD_ID)
//   ClockID: 1
// The time left and the interval are not here: only timer_gettime() in the task tells them.
import { ProcFormatError } from './proc-format-error.js';
import { decimal, hexBig, lines } from './scalars.js';

export interface PosixTimerInfo {
  id: number;
  signo: number;
  /** sigev_value as the task gave it (or the timer id, glibc's default for a NULL sigevent). */
  sival: bigint;
  /** SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2, with SIGEV_THREAD_ID 4 or'd in. */
  notify: number;
  /** The pid signalled, or the thread for SIGEV_THREAD_ID. */
  target: number;
  /** May be negative: CPU clocks of a given pid or thread (clock_getcpuclockid). */
  clockId: number;
}

const FILE = 'timers';
const NOTIFY: Record<string, number> = { signal: 0, none: 1, thread: 2 };
export const SIGEV_THREAD_ID = 4;

export function parsePosixTimers(text: string): PosixTimerInfo[] {
  const all = lines(text);
  if (all.length % 4) throw new ProcFormatError(FILE, `${all.length} lines, not four per timer`);
  const out: PosixTimerInfo[] = [];
  for (let i = 0; i < all.length; i += 4) {
    const field = (n: number, name: string): [string, string] => {
      const line = all[i + n]!;
      if (!line.startsWith(`${name}: `)) throw new ProcFormatError(FILE, `expected "${name}:"`, line);
      return [line.slice(name.length + 2), line];
    };
    const [id, idLine] = field(0, 'ID');
    const [sig, sigLine] = field(1, 'signal');
    const [notify, notifyLine] = field(2, 'notify');
    const [clock, clockLine] = field(3, 'ClockID');
    const s = /^(\d+)\/([0-9a-fA-F]+)$/.exec(sig);
    if (!s) throw new ProcFormatError(FILE, 'expected "signal: SIGNO/SIVAL"', sigLine);
    const n = /^([a-z]+)\/(pid|tid)\.(\d+)$/.exec(notify);
    const how = n ? NOTIFY[n[1]!] : undefined;
    if (!n || how === undefined) throw new ProcFormatError(FILE, 'expected "notify: signal|none|thread/pid|tid.N"', notifyLine);
    out.push({
      id: decimal(id, FILE, 'timer id', idLine),
      signo: decimal(s[1], FILE, 'signal', sigLine),
      sival: hexBig(s[2], FILE, 'sigev_value', sigLine),
      notify: how | (n[2] === 'tid' ? SIGEV_THREAD_ID : 0),
      target: decimal(n[3], FILE, 'notified task', notifyLine),
      clockId: decimal(clock, FILE, 'clock id', clockLine),
    });
  }
  return out;
}
