// POSIX timers (timer_create): /proc/PID/timers lists each one with its clock, signal,
// sigev_value and notification; the time left, the interval and the overrun are known only
// to the task, so timer_gettime() and timer_getoverrun() are injected into it (CRIU asks
// its parasite the same). A timer's value is relative, even for one set with TIMER_ABSTIME.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { failedWith, type Injector } from '../sys/index.js';
import { parsePosixTimers, SIGEV_THREAD_ID } from '../proc/index.js';
import { PosixTimerEntrySchema, type PosixTimerEntry } from '../image/gen/stasis/timer_pb.js';
import { StasisError } from '../errors.js';

const ITIMERSPEC = 32;

/** The file exists wherever POSIX timers do (it needs CONFIG_CHECKPOINT_RESTORE, as stasis does). */
function timersText(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/timers`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ''; // CONFIG_POSIX_TIMERS off: there are none
    throw e;
  }
}

export function readPosixTimers(inj: Injector, pid: number): PosixTimerEntry[] {
  const timers = parsePosixTimers(timersText(pid)).sort((a, b) => a.id - b.id);
  if (!timers.length) return [];
  inj.resetScratch();
  const buf = inj.put(Buffer.alloc(ITIMERSPEC * timers.length));
  const overruns = timers.map((t, i) => {
    const fail = (what: string, r: bigint) => {
      if (r < 0n) throw new StasisError('E_DUMP_FAILED', `Cannot read ${what} of POSIX timer ${t.id} of pid ${pid}: ${failedWith(r)}`);
      return r;
    };
    fail('the time left', inj.call('timer_gettime', t.id, buf + BigInt(i * ITIMERSPEC)));
    return Number(fail('the overrun', inj.call('timer_getoverrun', t.id)));
  });
  const specs = inj.mem.readExact(buf, ITIMERSPEC * timers.length);
  return timers.map((t, i) => {
    const o = i * ITIMERSPEC;
    return create(PosixTimerEntrySchema, {
      itId: t.id,
      clockId: t.clockId >>> 0, // CRIU's uint32: a negative CPU clock id wraps
      siSigno: t.signo,
      itSigevNotify: t.notify,
      sivalPtr: t.sival,
      overrun: overruns[i]!,
      isec: specs.readBigUInt64LE(o),
      insec: specs.readBigUInt64LE(o + 8),
      vsec: specs.readBigUInt64LE(o + 16),
      vnsec: specs.readBigUInt64LE(o + 24),
      ...(t.notify & SIGEV_THREAD_ID ? { notifyThreadId: t.target } : {}),
    });
  });
}
