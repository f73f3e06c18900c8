// What only the task itself can tell: its signal handlers, clear_child_tid, alternate
// signal stack, interval timers and a few prctl values, asked through injected syscalls
// (one scratch buffer, read back at once; all in one batch, callMany(), where the injector can).
import { failedWith, type Injector, type SyscallName } from '../sys/index.js';
import { StasisError } from '../errors.js';

export const NSIG = 64;
const SIGKILL = 9, SIGSTOP = 19;
const PR_GET_PDEATHSIG = 2, PR_GET_DUMPABLE = 3, PR_GET_TID_ADDRESS = 40, PR_GET_CHILD_SUBREAPER = 37, PR_GET_THP_DISABLE = 42;

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
  /** The MEMBARRIER_CMD_REGISTER_* commands the mm was registered with (they are per mm, not kept by fork or exec). */
  membarrierMask: number;
  /** PR_GET_THP_DISABLE: 0, 1 (disabled), 3 (disabled except where advised, Linux 6.18). */
  thpDisable: number;
}

const MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;
// Each barrier command that needs a registration, as a bit; its REGISTER command is the next bit.
const MEMBARRIER_EXPEDITED_CMDS = [1 << 1, 1 << 3, 1 << 5, 1 << 7];

/**
 * The mm's membarrier registrations: MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3), or else
 * each expedited barrier issued once (it fails with EPERM where the mm is not registered).
 */
function readMembarrierMask(inj: Injector): number {
  const r = inj.call('membarrier', MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
  if (r >= 0n) return Number(r);
  let mask = 0;
  for (const cmd of MEMBARRIER_EXPEDITED_CMDS) if (inj.call('membarrier', cmd, 0, 0) === 0n) mask |= cmd << 1;
  return mask;
}

/** What a call asks (for its error), and the call. */
type Query = [what: string, name: SyscallName, args: (bigint | number)[]];

export function readTaskInternals(inj: Injector): TaskInternals {
  inj.resetScratch();
  const sa = inj.put(Buffer.alloc(NSIG * 32));
  // 0: clear_child_tid, 8: stack_t, 32: three itimervals (96 bytes), 128: pdeath, 136: subreaper.
  const misc = inj.put(Buffer.alloc(144));
  const fail = (what: string, r: bigint) => {
    if (r < 0n) throw new StasisError('E_DUMP_FAILED', `Cannot read ${what} of pid ${inj.pid}: ${failedWith(r)}`);
  };
  // One stop for them all where the injector can (callMany(): its loop in a page of its own).
  const sigs = Array.from({ length: NSIG }, (_, i) => i + 1).filter((sig) => sig !== SIGKILL && sig !== SIGSTOP);
  const calls: Query[] = [
    ...sigs.map((sig): Query => [`sigaction ${sig}`, 'rt_sigaction', [sig, 0, sa + BigInt((sig - 1) * 32), 8]]),
    ['clear_child_tid', 'prctl', [PR_GET_TID_ADDRESS, misc, 0, 0, 0]],
    ['sigaltstack', 'sigaltstack', [0, misc + 8n]],
    ...[0, 1, 2].map((w): Query => ['itimer', 'getitimer', [w, misc + 32n + BigInt(w * 32)]]),
    ['pdeath signal', 'prctl', [PR_GET_PDEATHSIG, misc + 128n, 0, 0, 0]],
    ['child subreaper', 'prctl', [PR_GET_CHILD_SUBREAPER, misc + 136n, 0, 0, 0]],
    ['dumpable', 'prctl', [PR_GET_DUMPABLE, 0, 0, 0, 0]],
    ['THP-disable flag', 'prctl', [PR_GET_THP_DISABLE, 0, 0, 0, 0]],
  ];
  const results = inj.callMany(calls.map(([, name, args]) => [name, args] as const));
  calls.forEach(([what], i) => fail(what, results[i]!));
  const dumpable = results[calls.length - 2]!, thp = results[calls.length - 1]!;

  const sab = inj.mem.readExact(sa, NSIG * 32);
  const m = inj.mem.readExact(misc, 144);
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
    pdeathSig: m.readInt32LE(128),
    childSubreaper: m.readInt32LE(136) !== 0,
    membarrierMask: readMembarrierMask(inj),
    thpDisable: Number(thp),
  };
}
