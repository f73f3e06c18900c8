// struct user_regs_struct (x86_64), as NT_PRSTATUS returns it.
import { getRegset, setRegset, NT } from './ptrace.js';

export const REG_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi',
  'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export type Regs = Record<RegName, bigint>;
export const REGS_SIZE = REG_NAMES.length * 8;

export function decodeRegs(b: Buffer): Regs {
  const r = {} as Regs;
  REG_NAMES.forEach((n, i) => (r[n] = b.readBigUInt64LE(i * 8)));
  return r;
}

export function encodeRegs(r: Regs): Buffer {
  const b = Buffer.alloc(REGS_SIZE);
  REG_NAMES.forEach((n, i) => b.writeBigUInt64LE(BigInt.asUintN(64, r[n]), i * 8));
  return b;
}

export function getRegs(pid: number): Regs {
  return decodeRegs(getRegset(pid, NT.PRSTATUS, REGS_SIZE));
}
export function setRegs(pid: number, r: Regs): void {
  setRegset(pid, NT.PRSTATUS, encodeRegs(r));
}

/** The full extended state (XSAVE layout, non-compacted) or, without XSAVE, the 512-byte FXSAVE area. */
export function getFpu(pid: number): { xsave: boolean; data: Buffer } {
  try {
    return { xsave: true, data: Buffer.from(getRegset(pid, NT.X86_XSTATE, 16384)) };
  } catch {
    return { xsave: false, data: Buffer.from(getRegset(pid, NT.PRFPREG, 512)) };
  }
}
export function setFpu(pid: number, fpu: { xsave: boolean; data: Buffer }): void {
  setRegset(pid, fpu.xsave ? NT.X86_XSTATE : NT.PRFPREG, fpu.data);
}

const ERESTART = new Set([-512n, -513n, -514n, -516n]);

/**
 * Registers as the task will resume after a restore: a syscall the freeze interrupted is
 * set to run again (ip back over the 2-byte syscall instruction). The kernel would resume a
 * restart_block syscall (nanosleep, poll) with the remaining time; that state does not
 * survive, so it restarts with its original arguments: it may sleep longer, never shorter.
 */
export function restartedRegs(r: Regs): Regs {
  const out = { ...r };
  const ax = BigInt.asIntN(64, r.rax);
  if (BigInt.asIntN(64, r.orig_rax) >= 0n && ERESTART.has(ax)) {
    out.rax = r.orig_rax;
    out.rip = r.rip - 2n;
  }
  out.orig_rax = BigInt.asUintN(64, -1n);
  return out;
}
