// Putting back what readTaskInternals() took, through injected syscalls.
import { failedWith, type Injector } from '../sys/index.js';
import type { TaskInternals } from '../dump/task-internals.js';
import { StasisError } from '../errors.js';

const PR_SET_PDEATHSIG = 1, PR_SET_DUMPABLE = 4, PR_SET_CHILD_SUBREAPER = 36;
const SS_DISABLE = 2;

function check(inj: Injector, what: string, r: bigint): void {
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${what} of pid ${inj.pid}: ${failedWith(r)}`);
}

export function restoreTaskInternals(inj: Injector, t: TaskInternals): void {
  inj.resetScratch();
  // One stop for all of them where the injector can (callMany).
  const acts = Buffer.alloc(32 * t.sigactions.length);
  t.sigactions.forEach((a, i) => {
    acts.writeBigUInt64LE(a.handler, 32 * i);
    acts.writeBigUInt64LE(a.flags, 32 * i + 8);
    acts.writeBigUInt64LE(a.restorer, 32 * i + 16);
    acts.writeBigUInt64LE(a.mask, 32 * i + 24);
  });
  const at = t.sigactions.length ? inj.put(acts) : 0n;
  const results = inj.callMany(t.sigactions.map((a, i) => ['rt_sigaction', [a.sig, at + BigInt(32 * i), 0, 8]] as const));
  t.sigactions.forEach((a, i) => check(inj, `sigaction ${a.sig}`, results[i]!));
  inj.resetScratch();
  check(inj, 'clear_child_tid', inj.call('set_tid_address', t.clearTidAddr));
  if (!(t.altStack.flags & SS_DISABLE)) {
    const ss = Buffer.alloc(24);
    ss.writeBigUInt64LE(t.altStack.sp, 0);
    ss.writeInt32LE(t.altStack.flags & ~1, 8); // SS_ONSTACK is a state, not a setting
    ss.writeBigUInt64LE(t.altStack.size, 16);
    check(inj, 'sigaltstack', inj.call('sigaltstack', inj.put(ss), 0));
  }
  t.itimers.forEach((it, which) => {
    if (!it.vsec && !it.vusec) return;
    const b = Buffer.alloc(32);
    b.writeBigInt64LE(it.isec, 0);
    b.writeBigInt64LE(it.iusec, 8);
    b.writeBigInt64LE(it.vsec, 16);
    b.writeBigInt64LE(it.vusec, 24);
    check(inj, 'itimer', inj.call('setitimer', which, inj.put(b), 0));
  });
  if (t.childSubreaper) check(inj, 'child subreaper', inj.call('prctl', PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
  // Registered again one command at a time (CRIU's restore_membarrier_registrations).
  for (let bit = 0; bit < 32; bit++) {
    if (t.membarrierMask & (1 << bit)) check(inj, `membarrier registration 0x${(1 << bit).toString(16)}`, inj.call('membarrier', 1 << bit, 0, 0));
  }
}

/**
 * Once the thread's credentials are restored: changing its ids clears the pdeath signal and
 * resets the (process-wide) dumpable flag (commit_creds).
 */
export function restoreAfterCreds(inj: Injector, t: { pdeathSig: number; dumpable?: number }): void {
  if (t.pdeathSig) check(inj, 'pdeath signal', inj.call('prctl', PR_SET_PDEATHSIG, t.pdeathSig, 0, 0, 0));
  if (t.dumpable === 0 || t.dumpable === 1) check(inj, 'dumpable', inj.call('prctl', PR_SET_DUMPABLE, t.dumpable, 0, 0, 0));
}

/** Queues the signals that were pending, each with its full siginfo (queued to itself). */
export function requeueSignals(inj: Injector, tgid: number, tid: number, shared: Buffer[], own: Buffer[]): void {
  for (const [list, isShared] of [[shared, true], [own, false]] as const) {
    for (const si of list) {
      inj.resetScratch();
      const sig = si.readInt32LE(0);
      const r = isShared
        ? inj.call('rt_sigqueueinfo', tgid, sig, inj.put(si))
        : inj.call('rt_tgsigqueueinfo', tgid, tid, sig, inj.put(si));
      check(inj, `pending signal ${sig}`, r);
    }
  }
}

/**
 * Dequeues every signal pending on a task still under construction: the SIGCHLDs of the
 * helpers and zombies it made were never sent to the dumped task (its own pending signals
 * are queued again from the image afterwards).
 */
export function drainSignals(inj: Injector): void {
  inj.resetScratch();
  const all = inj.put(Buffer.alloc(8, 0xff));
  const zero = inj.put(Buffer.alloc(16));
  for (let i = 0; i < 128; i++) {
    const r = inj.call('rt_sigtimedwait', all, 0, zero, 8);
    if (r === -11n) return; // EAGAIN: nothing left
    check(inj, 'drain pending signals', r);
  }
}
