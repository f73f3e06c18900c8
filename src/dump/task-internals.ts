// What only the task itself can tell: its signal handlers, clear_child_tid, alternate
// signal stack, interval timers and a few prctl values, asked through injected syscalls
// (one scratch buffer, read back at once).
import type { Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';

export const NSIG = 64;
const SIGKILL = 9, SIGSTOP = 19;
const PR_GET_PDEATHSIG = 2, PR_GET_DUMPABLE = 3, PR_GET_TID_ADDRESS = 40, PR_GET_CHILD_SUBREAPER = 37;

export interface SigAction {
  sig: number;
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
}

export interface TaskInternals {
  sigactions: SigAction[];
  clearTidAddr: bigint;
  altStack: { sp: bigint; size: bigint; flags: number };
  /** ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF: interval and value, in seconds and microseconds. */
  itimers: { isec: bigint; iusec: bigint; vsec: bigint; vusec: bigint }[];
  dumpable: number;
  pdeathSig: number;
  childSubreaper: boolean;
}

export function readTaskInternals(inj: Injector): TaskInternals {
  inj.resetScratch();
  const sa = inj.put(Buffer.alloc(NSIG * 32));
  const misc = inj.put(Buffer.alloc(128));
  const fail = (what: string, r: bigint) => {
    if (r < 0n) throw new StasisError('E_DUMP_FAILED', `Cannot read ${what} of pid ${inj.pid}: errno ${-r}`);
  };
  for (let sig = 1; sig <= NSIG; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP) continue;
    fail(`sigaction ${sig}`, inj.call('rt_sigaction', sig, 0, sa + BigInt((sig - 1) * 32), 8));
  }
  fail('clear_child_tid', inj.call('prctl', PR_GET_TID_ADDRESS, misc, 0, 0, 0));
  fail('sigaltstack', inj.call('sigaltstack', 0, misc + 8n));
  for (let w = 0; w < 3; w++) fail('itimer', inj.call('getitimer', w, misc + 32n + BigInt(w * 32)));
  fail('pdeath signal', inj.call('prctl', PR_GET_PDEATHSIG, misc + 0x70n, 0, 0, 0));
  fail('child subreaper', inj.call('prctl', PR_GET_CHILD_SUBREAPER, misc + 0x78n, 0, 0, 0));
  const dumpable = inj.call('prctl', PR_GET_DUMPABLE, 0, 0, 0, 0);
  fail('dumpable', dumpable);

  const sab = inj.mem.readExact(sa, NSIG * 32);
  const m = inj.mem.readExact(misc, 128);
  const sigactions: SigAction[] = [];
  for (let sig = 1; sig <= NSIG; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP) continue;
    const o = (sig - 1) * 32;
    sigactions.push({
      sig,
      handler: sab.readBigUInt64LE(o),
      flags: sab.readBigUInt64LE(o + 8),
      restorer: sab.readBigUInt64LE(o + 16),
      mask: sab.readBigUInt64LE(o + 24),
    });
  }
  const itimers = [0, 1, 2].map((w) => {
    const o = 32 + w * 32;
    return { isec: m.readBigInt64LE(o), iusec: m.readBigInt64LE(o + 8), vsec: m.readBigInt64LE(o + 16), vusec: m.readBigInt64LE(o + 24) };
  });
  return {
    sigactions,
    clearTidAddr: m.readBigUInt64LE(0),
    altStack: { sp: m.readBigUInt64LE(8), flags: m.readInt32LE(16), size: m.readBigUInt64LE(24) },
    itimers,
    dumpable: Number(dumpable),
    pdeathSig: m.readInt32LE(0x70),
    childSubreaper: m.readInt32LE(0x78) !== 0,
  };
}
