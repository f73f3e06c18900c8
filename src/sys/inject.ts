// Running system calls inside a stopped task, without a parasite: `syscall; int3` is written
// at a code address, the registers are set, the task runs to the int3 and rax is read back.
// All signals are blocked meanwhile so no handler runs and no signal stop interleaves.
import { SYS, type SyscallName } from './syscall-table.js';
import { cont, getSigmask, setSigmask, syscallStep, waitPid, SIG } from './ptrace.js';
import { getRegs, setRegs, type Regs } from './regs.js';
import { ProcMem } from './task-mem.js';
import { SyscallError } from './syscall-error.js';

export const SYSCALL_INT3 = Buffer.from([0x0f, 0x05, 0xcc]);
const ALL_SIGNALS = BigInt.asUintN(64, -1n);

export class InjectError extends Error {
  constructor(readonly pid: number, message: string) {
    super(message);
    this.name = 'InjectError';
  }
}

type Arg = bigint | number;

export interface InjectorOptions {
  /** Where the code lives; default: the task's current rip, whose bytes are put back by end(). */
  code?: bigint;
  /** The code is already there (a clone of a task we injected into): write nothing. */
  codeInPlace?: boolean;
}

export class Injector {
  readonly pid: number;
  readonly saved: Regs;
  readonly savedMask: bigint;
  readonly mem: ProcMem;
  code: bigint;
  private readonly savedCode: Buffer | null;
  private scratchAddr = 0n;
  private scratchSize = 0;
  private scratchUsed = 0;
  calls = 0;

  constructor(pid: number, opts: InjectorOptions = {}) {
    this.pid = pid;
    this.saved = getRegs(pid);
    this.savedMask = getSigmask(pid);
    this.mem = new ProcMem(pid, true);
    this.code = opts.code ?? this.saved.rip;
    if (opts.codeInPlace) {
      this.savedCode = null;
    } else {
      this.savedCode = this.mem.readExact(this.code, SYSCALL_INT3.length);
      this.mem.write(this.code, SYSCALL_INT3);
    }
    setSigmask(pid, ALL_SIGNALS);
  }

  /** Moves the code to a new address (which must hold `syscall; int3` or be writable). */
  relocateCode(addr: bigint): void {
    this.mem.write(addr, SYSCALL_INT3);
    this.code = addr;
  }

  private regsFor(name: SyscallName, args: Arg[]): Regs {
    const a = args.map((x) => BigInt.asUintN(64, BigInt(x)));
    return {
      ...this.saved,
      rax: BigInt(SYS[name]),
      rdi: a[0] ?? 0n, rsi: a[1] ?? 0n, rdx: a[2] ?? 0n, r10: a[3] ?? 0n, r8: a[4] ?? 0n, r9: a[5] ?? 0n,
      rip: this.code,
      orig_rax: BigInt.asUintN(64, -1n), // no syscall-restart processing on our registers
    };
  }

  /** Runs one syscall; returns rax as a signed value (negative errno on failure). */
  call(name: SyscallName, ...args: Arg[]): bigint {
    setRegs(this.pid, this.regsFor(name, args));
    cont(this.pid);
    this.waitTrap(name);
    this.calls++;
    const r = getRegs(this.pid);
    if (r.rip !== this.code + 3n) {
      throw new InjectError(this.pid, `Injected ${name} in pid ${this.pid} stopped at 0x${r.rip.toString(16)}, not after the injected code`);
    }
    return BigInt.asIntN(64, r.rax);
  }

  /** Runs one syscall and throws SyscallError when it fails. */
  must(name: SyscallName, ...args: Arg[]): bigint {
    const r = this.call(name, ...args);
    if (r < 0n && r > -4096n) throw new SyscallError(name, Number(-r), `injected in pid ${this.pid}`);
    return r;
  }

  private waitTrap(what: string): void {
    for (;;) {
      const w = waitPid(this.pid);
      if (!w) continue;
      if (w.kind !== 'stopped') {
        throw new InjectError(this.pid, `Task ${this.pid} ended during injected ${what} (${w.kind})`);
      }
      if (w.signal === SIG.SIGTRAP && w.event === 0) return;
      if (w.event !== 0) {
        // An event stop (a group stop from a SIGSTOP sent by someone): keep going.
        cont(this.pid);
        continue;
      }
      throw new InjectError(this.pid, `Task ${this.pid} got signal ${w.signal} during injected ${what}`);
    }
  }

  /** Bump-allocates bytes in a scratch mapping inside the task and writes `data` there. */
  put(data: Buffer): bigint {
    const size = (data.length + 15) & ~15;
    if (this.scratchUsed + size > this.scratchSize) this.growScratch(size);
    const addr = this.scratchAddr + BigInt(this.scratchUsed);
    this.mem.write(addr, data);
    this.scratchUsed += size;
    return addr;
  }
  putString(s: string): bigint {
    return this.put(Buffer.from(s + '\0'));
  }
  /** Forgets what put() wrote (the mapping stays). */
  resetScratch(): void {
    this.scratchUsed = 0;
  }
  /** Uses an area the caller mapped in the task for put(). */
  useScratch(addr: bigint, size: number): void {
    this.scratchAddr = addr;
    this.scratchSize = size;
    this.scratchUsed = 0;
  }

  private growScratch(need: number): void {
    if (this.scratchSize) this.must('munmap', this.scratchAddr, this.scratchSize);
    const size = Math.max(1 << 16, (need + 4095) & ~4095);
    this.scratchAddr = this.must('mmap', 0, size, 3, 0x22, -1, 0); // RW, PRIVATE|ANONYMOUS
    this.scratchSize = size;
    this.scratchUsed = 0;
  }

  /** Puts the task back as it was: code bytes, scratch mapping, registers and signal mask. */
  end(regs: Regs = this.saved): void {
    if (this.scratchSize) this.must('munmap', this.scratchAddr, this.scratchSize);
    this.scratchSize = 0;
    if (this.savedCode) this.mem.write(this.code, this.savedCode);
    setRegs(this.pid, regs);
    setSigmask(this.pid, this.savedMask);
    this.mem.close();
  }

  /**
   * Runs a last syscall that may take the code away (munmap of the code page) and stops at
   * its exit through PTRACE_SYSCALL, so nothing runs after it; then sets `regs`.
   */
  finishWith(regs: Regs, name: SyscallName, ...args: Arg[]): bigint {
    setRegs(this.pid, this.regsFor(name, args));
    for (let stop = 0; stop < 2; stop++) {
      syscallStep(this.pid);
      const w = waitPid(this.pid);
      if (!w || w.kind !== 'stopped' || (w.signal & 0x7f) !== SIG.SIGTRAP) {
        throw new InjectError(this.pid, `Task ${this.pid} did not stop at the syscall of its final ${name}`);
      }
    }
    const r = BigInt.asIntN(64, getRegs(this.pid).rax);
    setRegs(this.pid, regs);
    this.mem.close();
    return r;
  }
}
