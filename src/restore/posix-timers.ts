// Putting POSIX timers back into a restored task, each at its own id (programs keep the
// timer_t they were given). Since Linux 6.14 prctl(PR_TIMER_CREATE_RESTORE_IDS) makes
// timer_create() take the wanted id from *timerid; before that, ids come from a counter of
// the process that only grows (posix_timer_add()), so, as CRIU's restorer does, timers are
// made in id order and those made for the ids in between are deleted again. The overrun
// cannot be set (no syscall does), and is only kept in the image; a timer's pending signal
// is queued again with the other pending signals, as a plain siginfo.
import { failedWith, type Injector } from '../sys/index.js';
import type { PosixTimerEntry } from '../image/gen/stasis/timer_pb.js';
import { StasisError } from '../errors.js';

const PR_TIMER_CREATE_RESTORE_IDS = 77, RESTORE_IDS_OFF = 0, RESTORE_IDS_ON = 1;
const NSEC = 1_000_000_000n;
/** Without the prctl, each id skipped costs two injected syscalls (about 50 µs). */
const MAX_SEQUENTIAL_ID = 1 << 16;

function sigevent(t: PosixTimerEntry): Buffer {
  // struct sigevent: sigev_value, sigev_signo, sigev_notify, then the union whose first int
  // is the thread id of SIGEV_THREAD_ID; 64 bytes in all.
  const b = Buffer.alloc(64);
  b.writeBigUInt64LE(t.sivalPtr, 0);
  b.writeInt32LE(t.siSigno | 0, 8);
  b.writeInt32LE(t.itSigevNotify | 0, 12);
  b.writeInt32LE(t.notifyThreadId ?? 0, 16);
  return b;
}

function itimerspec(pid: number, t: PosixTimerEntry): Buffer {
  const bad = (v: bigint, ns: bigint) => v < 0n || v >= 1n << 63n || ns < 0n || ns >= NSEC;
  if (bad(t.isec, t.insec) || bad(t.vsec, t.vnsec)) {
    throw new StasisError('E_CORRUPT', `POSIX timer ${t.itId} of pid ${pid} in the image has an invalid time (${t.vsec}s ${t.vnsec}ns every ${t.isec}s ${t.insec}ns)`);
  }
  // Time left 0 on an interval timer: it was about to fire; armed with a full interval, as CRIU does.
  const idle = t.vsec === 0n && t.vnsec === 0n;
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(t.isec, 0);
  b.writeBigInt64LE(t.insec, 8);
  b.writeBigInt64LE(idle ? t.isec : t.vsec, 16);
  b.writeBigInt64LE(idle ? t.insec : t.vnsec, 24);
  return b;
}

export function restorePosixTimers(inj: Injector, timers: PosixTimerEntry[], explicitIds: boolean): void {
  if (!timers.length) return;
  const pid = inj.pid;
  const sorted = [...timers].sort((a, b) => a.itId - b.itId);
  const failed = (t: PosixTimerEntry, what: string) => new StasisError('E_RESTORE_FAILED', `Cannot restore POSIX timer ${t.itId} of pid ${pid}: ${what}`);
  const must = (t: PosixTimerEntry, name: 'timer_create' | 'timer_delete' | 'timer_settime', r: bigint) => {
    if (r < 0n) throw failed(t, `${name} failed with ${failedWith(r)}`);
  };
  /** timer_create with *timerid = `want` (read by the kernel in restore mode only); the id it made. */
  const make = (t: PosixTimerEntry, want: number): number => {
    inj.resetScratch();
    const id = Buffer.alloc(8);
    id.writeInt32LE(want);
    const idAt = inj.put(id);
    must(t, 'timer_create', inj.call('timer_create', t.clockId | 0, inj.put(sigevent(t)), idAt));
    return inj.mem.readExact(idAt, 4).readInt32LE(0);
  };

  if (explicitIds) {
    const on = inj.call('prctl', PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_ON, 0, 0, 0);
    if (on < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the POSIX timers of pid ${pid}: PR_TIMER_CREATE_RESTORE_IDS failed with ${failedWith(on)}`);
    try {
      for (const t of sorted) {
        const got = make(t, t.itId);
        if (got !== t.itId) throw failed(t, `timer_create made id ${got} instead`);
      }
    } finally {
      // Back to normal mode even after a failure: else the task's own timer_create() reads *timerid.
      const off = inj.call('prctl', PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF, 0, 0, 0);
      if (off < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot switch PR_TIMER_CREATE_RESTORE_IDS off in pid ${pid}: ${failedWith(off)}`);
    }
  } else {
    let next = 0; // a fresh process's counter
    for (const t of sorted) {
      if (t.itId > MAX_SEQUENTIAL_ID) {
        throw new StasisError('E_UNSUPPORTED', `Cannot restore POSIX timer ${t.itId} of pid ${pid}: this kernel lacks PR_TIMER_CREATE_RESTORE_IDS (Linux 6.14), and reaching that id would take ${t.itId} timer_create calls`);
      }
      for (;;) {
        const got = make(t, 0);
        if (got !== next) throw failed(t, `timer_create made id ${got}, not ${next}: the kernel does not hand out timer ids in order`);
        next++;
        if (got === t.itId) break;
        must(t, 'timer_delete', inj.call('timer_delete', got));
      }
    }
  }
  // Armed last, with relative times: the time each had left when it was dumped.
  for (const t of sorted) {
    inj.resetScratch();
    must(t, 'timer_settime', inj.call('timer_settime', t.itId, 0, inj.put(itimerspec(pid, t)), 0));
  }
}
