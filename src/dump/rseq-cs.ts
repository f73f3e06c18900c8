// A thread frozen inside an rseq critical section. Its struct rseq names the section
// (rseq_cs); the kernel aborts the section (ip = abort_ip, rseq_cs cleared) the next time the
// thread returns to user space after a preemption or a signal, and clears a stale rseq_cs
// lazily. The syscalls stasis injects return to user space, so they can clear it: the value
// is read at freeze time, before any injection (CRIU's read_rseq_cs), written back before a
// thaw, and either turned into the abort the kernel would have made or kept for the restore
// (RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL: CRIU's rseq_cs_pointer).
import { getRseqConfig, vmRead, ProcMem, type Regs } from '../sys/index.js';
import { StasisError } from '../errors.js';

const RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL = 2;

export interface RseqCsAtFreeze {
  /** Address of struct rseq's rseq_cs field. */
  addr: bigint;
  /** Its value when the thread was frozen (non-zero). */
  value: bigint;
}

/** The thread's rseq_cs, if it has rseq registered and a section named. */
export function readRseqCs(tid: number): RseqCsAtFreeze | undefined {
  const c = getRseqConfig(tid);
  if (!c.rseqAbiPointer) return undefined;
  const b = Buffer.alloc(8);
  if (vmRead(tid, c.rseqAbiPointer + 8n, b, 0, 8) !== 8) return undefined;
  const value = b.readBigUInt64LE(0);
  return value ? { addr: c.rseqAbiPointer + 8n, value } : undefined;
}

/** Puts rseq_cs back as it was at freeze time (the injected syscalls may have cleared it). */
export function writeBackRseqCs(tid: number, r: RseqCsAtFreeze): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(r.value, 0);
  const mem = new ProcMem(tid, true);
  try {
    mem.write(r.addr, b);
  } finally {
    mem.close();
  }
}

/**
 * What a dump keeps of a thread frozen with rseq_cs set: if its ip is inside the section
 * and a signal may restart it, the registers are those of the abort (the kernel's own
 * rseq_ip_fixup); else rseq_cs is kept, to be written back at restore as it was.
 */
export function fixupRseq(tid: number, regs: Regs, r: RseqCsAtFreeze | undefined): { regs: Regs; rseqCsPointer?: bigint } {
  if (!r) return { regs };
  const rseqFlags = Buffer.alloc(4), cs = Buffer.alloc(32);
  vmRead(tid, r.addr + 8n, rseqFlags, 0, 4);
  if (vmRead(tid, r.value, cs, 0, 32) !== 32) {
    throw new StasisError('E_DUMP_FAILED', `Cannot read the rseq critical section of thread ${tid} at 0x${r.value.toString(16)}`);
  }
  const version = cs.readUInt32LE(0), flags = cs.readUInt32LE(4) | rseqFlags.readUInt32LE(0);
  const start = cs.readBigUInt64LE(8), postCommit = cs.readBigUInt64LE(16), abortIp = cs.readBigUInt64LE(24);
  if (version !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid}: its rseq critical section has ABI version ${version}, stasis knows 0`);
  const inside = regs.rip >= start && regs.rip < start + postCommit;
  if (inside && !(flags & RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL)) return { regs: { ...regs, rip: abortIp } };
  return { regs, rseqCsPointer: r.value };
}
