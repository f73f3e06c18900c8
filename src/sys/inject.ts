// Running system calls inside a stopped task, without a parasite. Three ways:
//
// - frame (a task of someone else, a dump's): safe against stasis's death at every instant.
//   The task's code is never written. A signal frame of its own registers, mask and FPU state
//   is put on its stack below the red zone, and each call runs at a `syscall; ret` of its
//   own code with rsp at that frame: let go at any point (stasis killed), the task finishes
//   the syscall, returns into its own `__restore_rt` and rt_sigreturn puts it back where it
//   was. Each call stops at its syscall's exit (PTRACE_SYSCALL), before that way back runs.
// - page: the same where no frame can go on the stack (or the code has no such gadget):
//   a page of stasis's own with `syscall` then rt_sigreturn, and the frame inside it, mapped
//   by a first call and unmapped by a last one at a syscall instruction of the task (the only
//   two moments that stasis dying would leave it broken, and said so through `warn`).
// - int3 (`code` given: a restore's stubs, which die with stasis through PTRACE_O_EXITKILL):
//   `syscall; int3` at that address, one stop per call.
//
// Many calls at once (callMany()) run in one resume: in a restore's stub, a loop in its own
// code page ending in int3; in the frame way, the same loop in a page mapped for it that
// ends parked in a ppoll with a timeout, then `ret` into the frame (FRAME_BATCH_LOOP).
//
// All signals are blocked meanwhile, so no handler runs and no signal stop interleaves. A
// syscall the task was in when it was stopped must restart: the kernel restarts it only on
// its way out of the signal code, so at the end the task is stopped there once more (an
// interrupt stop) before its registers are given back.
import { SYS, type SyscallName } from './syscall-table.js';
import { cont, getSigmask, interrupt, setSigmask, syscallStep, waitPid, SIG, PTRACE_EVENT, RegsIo } from './ptrace.js';
import { encodeRegs, getFpu, getRegs, restartedRegs, setRegs, REGS_SIZE, REG_NAMES, type Regs, type RegName } from './regs.js';
import { ProcMem } from './task-mem.js';
import { SyscallError, errnoName } from './syscall-error.js';
import { StasisError } from '../errors.js';
import { SigFrame, GadgetCache, findGadgets, readMaps, stackSlot, TRAMPOLINE, TRAMPOLINE_SIZE } from './inject-frame.js';

export { GadgetCache, GADGETS_FILE } from './inject-frame.js';
export const SYSCALL_INT3 = Buffer.from([0x0f, 0x05, 0xcc]);
/**
 * callMany()'s loop, in a code page of stasis's own: rbx walks a table of r12 entries of eight
 * words (nr, six arguments, the result written back), each run by one `syscall`, then int3:
 *   loop: test r12,r12; jz done; mov rax,[rbx]; mov rdi,[rbx+8]; mov rsi,[rbx+16];
 *         mov rdx,[rbx+24]; mov r10,[rbx+32]; mov r8,[rbx+40]; mov r9,[rbx+48]; syscall;
 *         mov [rbx+56],rax; add rbx,64; dec r12; jmp loop
 *   done: int3
 */
const BATCH_LOOP = Buffer.from('4d85e4742a488b03488b7b08488b7310488b53184c8b53204c8b43284c8b4b300f05488943384883c34049ffccebd1cc', 'hex');
const BATCH_AT = 16n;
const BATCH_ENTRY = 64;
/**
 * The same loop for the frame way (a task of someone else's), in a page of its own mapped
 * in the task: it ends with `ret` where the int3 was, into the frame's restorer, as the
 * `syscall; ret` gadget would (let go at any point, the task finishes the loop and
 * rt_sigreturn gives it back its registers and mask). The table's last entry is a park, a
 * ppoll of no fds with a timeout (FRAME_BATCH_PARK_S): stasis sees the last real result
 * written, stops the task there with PTRACE_INTERRUPT, and the task never reaches the `ret`;
 * a stasis that died meanwhile costs the task that long a wait. Not a futex or nanosleep:
 * those, interrupted, keep their restart in the task's restart_block, where the syscall the
 * task was stopped in (its own nanosleep, say) keeps its own, to be restarted at the end.
 */
const FRAME_BATCH_LOOP = Buffer.concat([BATCH_LOOP.subarray(0, BATCH_LOOP.length - 1), Buffer.from([0xc3])]);
const FRAME_BATCH_PARK_S = 2;
/** callMany() in the frame way from this many calls (fewer: one by one, two stops each). */
const FRAME_BATCH_FROM = 8;
/** What a result slot holds until its call has run: no syscall returns it. */
const NOT_RUN = 0x5eadbeefcafef00dn;
const ALL_SIGNALS = BigInt.asUintN(64, -1n);
/** What awaitSlot() naps on (made on first use: not in the start-up snapshot). */
let nap: Int32Array | undefined;
const NO_SYSCALL = BigInt.asUintN(64, -1n);
const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
const ERESTART = new Set([-512n, -513n, -514n, -516n]);
const OFF = Object.fromEntries(REG_NAMES.map((n, i) => [n, i * 8])) as Record<RegName, number>;
const ARG_REGS: RegName[] = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'];

/** An injected syscall went wrong (the task died, or stopped somewhere else): code E_INJECT. */
export class InjectError extends StasisError {
  constructor(readonly pid: number, message: string) {
    super('E_INJECT', message);
  }
}

type Arg = bigint | number;

export interface InjectorOptions {
  /**
   * The code of a task stasis made (and that dies with it): `syscall; int3` is written there
   * (unless `codeInPlace`) and each call traps on the int3. Without it, the tracer-death-safe
   * way is taken.
   */
  code?: bigint;
  /** The code is already there (a clone of a task we injected into): write nothing. */
  codeInPlace?: boolean;
  /** Where the gadgets were found in earlier tasks of the run (a search costs ~0.3 ms). */
  gadgets?: GadgetCache | undefined;
  /** Told each injected syscall and its result (the run's log at debug level). */
  log?: ((msg: string) => void) | undefined;
  /** Told when the task cannot be made safe against stasis's death (no gadget, odd stack). */
  warn?: ((msg: string) => void) | undefined;
  /** Tests: called at each point where the task may be let go; throwing there stops the injection as it is. */
  onStep?: ((step: string) => void) | undefined;
  /** Tests: how long a frame-way batch parks (FRAME_BATCH_PARK_S); 0 lets the task run on past it at once. */
  parkSeconds?: number | undefined;
}

export class Injector {
  readonly pid: number;
  readonly saved: Regs;
  readonly savedMask: bigint;
  readonly mem: ProcMem;
  /** Where the injected `syscall` is. */
  code: bigint;
  calls = 0;
  private readonly way: 'int3' | 'frame' | 'page';
  private readonly savedCode: Buffer | null = null;
  /** The registers of a call (rip, rsp and the rest set once; rax and arguments per call), and the result's. */
  private readonly callRegs: RegsIo;
  private readonly outRegs: RegsIo;
  private page: { addr: bigint; size: number; edge: bigint } | null = null;
  /** The task sits at a syscall-exit stop (not in the signal code, where it was stopped). */
  private atExit = false;
  private readonly log: ((msg: string) => void) | undefined;
  private readonly step: (step: string) => void;
  /** `code` starts a page of stasis's own (relocateCode(addr, true)): callMany() may write its loop there. */
  private ownPage = false;
  private batchWritten = false;
  /** The frame way's batch page (callMany()), mapped in the task on first use. */
  private framePage = 0n;
  /** The task ran on past the injection (a batch's park timed out): its registers are its own again, never to be set. */
  private escaped = false;
  private readonly parkSeconds: bigint;
  private scratchAddr = 0n;
  private scratchSize = 0;
  private scratchUsed = 0;

  constructor(pid: number, opts: InjectorOptions = {}) {
    this.pid = pid;
    this.log = opts.log;
    this.step = opts.onStep ?? (() => {});
    this.parkSeconds = BigInt(opts.parkSeconds ?? FRAME_BATCH_PARK_S);
    this.saved = getRegs(pid);
    this.savedMask = getSigmask(pid);
    this.mem = new ProcMem(pid, true);
    this.callRegs = new RegsIo(pid, REGS_SIZE);
    this.outRegs = new RegsIo(pid, REGS_SIZE);
    if (opts.code !== undefined) {
      this.way = 'int3';
      this.code = opts.code;
      if (!opts.codeInPlace) {
        this.savedCode = this.mem.readExact(this.code, SYSCALL_INT3.length);
        this.mem.write(this.code, SYSCALL_INT3);
      }
      this.template(this.saved.rsp);
      setSigmask(pid, ALL_SIGNALS);
      return;
    }
    try {
      const frame = new SigFrame(restartedRegs(this.saved), this.savedMask, getFpu(pid));
      const maps = readMaps(pid);
      const g = opts.gadgets ? opts.gadgets.find(this.mem, maps) : findGadgets(this.mem, maps);
      const slot = g.syscallRet !== null && g.restorer !== null ? stackSlot(pid, this.saved.rsp, frame.size, maps) : null;
      if (slot !== null && g.syscallRet !== null && g.restorer !== null) {
        this.way = 'frame';
        this.code = g.syscallRet;
        // The frame before the registers point at it, the mask blocked only once they do.
        this.mem.write(slot, frame.bytesAt(slot, g.restorer));
        this.step('frame');
        this.template(slot);
        this.setCall('getpid', []); // parked: let go now, it runs getpid and returns to itself
        this.step('parked');
        setSigmask(pid, ALL_SIGNALS);
        this.step('mask');
        return;
      }
      const edge = g.syscall ?? g.syscallRet;
      if (edge === null) throw new InjectError(pid, `Cannot inject into pid ${pid}: no syscall instruction in its code`);
      opts.warn?.(`pid ${pid}: ${slot === null && g.syscallRet !== null && g.restorer !== null ? 'its stack pointer is not in a thread stack' : 'no syscall;ret and __restore_rt in its code'}: ` +
        'stasis dying during its first or last injected syscall would leave it broken');
      this.way = 'page';
      this.code = this.enterPage(edge, frame, g.restorer ?? 0n);
    } catch (e) {
      this.mem.close();
      throw e;
    }
  }

  /** Sets the parts of the call registers that stay: the saved ones, rip, rsp, no syscall to restart. */
  private template(rsp: bigint): void {
    encodeRegs({ ...this.saved, rip: this.code, rsp, orig_rax: NO_SYSCALL }).copy(this.callRegs.buf);
  }

  /** Writes a call's number and arguments (and rip, which the last call moved) and sets them. */
  private setCall(name: SyscallName, args: Arg[]): void {
    const b = this.callRegs.buf;
    b.writeBigUInt64LE(BigInt(SYS[name]), OFF.rax);
    for (let i = 0; i < 6; i++) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(args[i] ?? 0)), OFF[ARG_REGS[i]!]);
    b.writeBigUInt64LE(this.code, OFF.rip);
    this.callRegs.set();
  }

  /** The page way: the page mapped from the task's own `syscall` at `edge`, its code and frame written. */
  private enterPage(edge: bigint, frame: SigFrame, restorer: bigint): bigint {
    const size = (TRAMPOLINE_SIZE + frame.size + 4095) & ~4095;
    this.code = edge;
    this.template(this.saved.rsp);
    const r = this.runAt(edge, 'mmap', [0, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0], true);
    if (r < 0n && r > -4096n) {
      setRegs(this.pid, this.saved);
      setSigmask(this.pid, this.savedMask);
      throw new SyscallError('mmap', Number(-r), `injected in pid ${this.pid}`);
    }
    const addr = BigInt.asUintN(64, r);
    const frameAt = addr + BigInt(TRAMPOLINE_SIZE);
    this.mem.write(addr, TRAMPOLINE);
    this.mem.write(frameAt, frame.bytesAt(frameAt, restorer));
    this.page = { addr, size, edge };
    this.code = addr;
    this.template(frameAt + 8n); // rt_sigreturn finds its frame at rsp - 8
    this.setCall('getpid', []); // parked in the page at once: the window ends here
    this.step('page');
    return addr;
  }

  /** A call at `at` (the page way's first and last), stopped at its exit. */
  private runAt(at: bigint, name: SyscallName, args: Arg[], first: boolean): bigint {
    const code = this.code;
    this.code = at;
    this.setCall(name, args);
    this.code = code;
    this.step(`${name}-regs`);
    if (first) {
      setSigmask(this.pid, ALL_SIGNALS);
      this.step('mask');
    }
    return this.runToExit(name, at);
  }

  /** Resumes into the syscall at `at` and stops at its exit; returns rax. */
  private runToExit(name: SyscallName, at: bigint): bigint {
    for (let stop = 0; stop < 2; stop++) {
      syscallStep(this.pid);
      this.waitStop(name, 'syscall');
      this.step(`${name}-${stop ? 'exit' : 'entry'}`);
    }
    this.atExit = true;
    return this.result(name, at + 2n);
  }

  private result(name: SyscallName, rip: bigint): bigint {
    const r = this.outRegs.get();
    const at = r.readBigUInt64LE(OFF.rip);
    if (at !== rip) {
      throw new InjectError(this.pid, `Injected ${name} in pid ${this.pid} stopped at 0x${at.toString(16)}, not after the injected code`);
    }
    return r.readBigInt64LE(OFF.rax);
  }

  /**
   * Moves the code to a new address (which must hold `syscall; int3` or be writable);
   * `ownPage`: a page-aligned page stasis mapped for itself, where callMany() may put its loop.
   */
  relocateCode(addr: bigint, ownPage = false): void {
    this.mem.write(addr, SYSCALL_INT3);
    this.code = addr;
    this.ownPage = ownPage && this.way === 'int3' && (addr & 0xfffn) === 0n;
    this.batchWritten = false;
  }

  /**
   * Runs the calls in order and returns their results (rax, signed). In a code page of
   * stasis's own (a restore's task, once its address space is rebuilt) all of them run in one
   * stop, their table in the scratch area (each injected call costs tens of µs: sixty-four
   * sigactions are one); elsewhere one by one. Every call runs, whatever an earlier one returned.
   */
  callMany(calls: readonly (readonly [SyscallName, readonly Arg[]])[]): bigint[] {
    if (this.way === 'frame' && calls.length >= FRAME_BATCH_FROM) {
      const r = this.callManyInFrame(calls);
      if (r) return r;
    }
    if (!this.ownPage || calls.length < 2) return calls.map(([name, args]) => this.call(name, ...args));
    if (!this.batchWritten) {
      this.mem.write(this.code + BATCH_AT, BATCH_LOOP);
      this.batchWritten = true;
    }
    const at = this.put(batchTable(calls));
    const what = batchName(calls);
    this.startBatch(this.code + BATCH_AT, at, calls.length);
    this.waitStop(what, 'int3');
    const rip = this.outRegs.get().readBigUInt64LE(OFF.rip);
    if (rip !== this.code + BATCH_AT + BigInt(BATCH_LOOP.length)) {
      throw new InjectError(this.pid, `Injected ${what} in pid ${this.pid} stopped at 0x${rip.toString(16)}, not after the injected code`);
    }
    return this.batchResults(at, calls);
  }

  /** Points the task at a batch loop at `rip` over the `n` entries of the table at `at` (rbx, r12) and lets it go. */
  private startBatch(rip: bigint, at: bigint, n: number): void {
    const b = this.callRegs.buf;
    b.writeBigUInt64LE(rip, OFF.rip);
    b.writeBigUInt64LE(at, OFF.rbx);
    b.writeBigUInt64LE(BigInt(n), OFF.r12);
    this.callRegs.set();
    // The template keeps the saved rbx and r12 for the single calls that follow.
    b.writeBigUInt64LE(this.saved.rbx, OFF.rbx);
    b.writeBigUInt64LE(this.saved.r12, OFF.r12);
    this.step('batch-regs');
    cont(this.pid);
  }

  /** The results of the first calls.length entries of the table at `at`, counted and logged. */
  private batchResults(at: bigint, calls: readonly (readonly [SyscallName, readonly Arg[]])[]): bigint[] {
    const done = this.mem.readExact(at, calls.length * BATCH_ENTRY);
    const results = calls.map((_, i) => done.readBigInt64LE(i * BATCH_ENTRY + 56));
    this.calls += calls.length;
    if (this.log) {
      calls.forEach(([name, args], i) => this.log?.(`pid ${this.pid}: ${name}(${args.map((x) => `0x${BigInt.asUintN(64, BigInt(x)).toString(16)}`).join(', ')}) = ${fmtResult(results[i]!)} (batched)`));
    }
    return results;
  }

  /**
   * callMany() in the frame way: the loop in a page of stasis's code mapped in the task
   * (FRAME_BATCH_LOOP), run with PTRACE_CONT, the task stopped at its park once the last
   * result is in. Null where the page cannot be mapped (the calls go one by one then).
   */
  private callManyInFrame(calls: readonly (readonly [SyscallName, readonly Arg[]])[]): bigint[] | null {
    if (this.framePage === 0n) {
      const r = this.call('mmap', 0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (r < 0n && r > -4096n) return null;
      this.framePage = BigInt.asUintN(64, r);
      this.mem.write(this.framePage, FRAME_BATCH_LOOP);
    }
    // The park: ppoll(NULL, 0, timeout, NULL, 8) with a relative timeout, after the calls.
    const timeout = Buffer.alloc(16);
    timeout.writeBigUInt64LE(this.parkSeconds, 0);
    const park = ['ppoll', [0, 0, this.put(timeout), 0, 8]] as const;
    const at = this.put(batchTable([...calls, park]));
    const what = batchName(calls);
    this.startBatch(this.framePage, at, calls.length + 1);
    this.step('batch-running');
    const slot = at + BigInt((calls.length - 1) * BATCH_ENTRY + 56);
    const finished = this.awaitSlot(slot, what);
    // Stopped where it is (parked, or still in the loop after a second): its registers are settable again either way.
    interrupt(this.pid);
    this.waitStop(what, 'interrupt');
    this.atExit = false; // an interrupt stop, as in the signal code: what end() restarts is restarted
    const rip = this.outRegs.get().readBigUInt64LE(OFF.rip);
    if (rip < this.framePage || rip > this.framePage + BigInt(FRAME_BATCH_LOOP.length)) {
      this.escaped = true;
      throw new InjectError(this.pid, `Injected ${what} in pid ${this.pid}: the task ran on past its park (stopped at 0x${rip.toString(16)}), its tracer too slow to stop it within ${this.parkSeconds} s`);
    }
    if (!finished && this.mem.readExact(slot, 8).readBigUInt64LE(0) === NOT_RUN) {
      throw new InjectError(this.pid, `Injected ${what} in pid ${this.pid} did not finish within a second`);
    }
    this.step('batch-stopped');
    return this.batchResults(at, calls);
  }

  /** Waits (polling the task's memory) until the result slot at `slot` is written, a second at most (false then); the task's own stops meanwhile are dealt with as waitStop() does. */
  private awaitSlot(slot: bigint, what: string): boolean {
    const word = Buffer.alloc(8);
    const start = performance.now();
    for (let polls = 0; ; polls++) {
      if (this.mem.read(slot, word) === 8 && word.readBigUInt64LE(0) !== NOT_RUN) return true;
      const w = waitPid(this.pid, true);
      if (w) {
        if (w.kind !== 'stopped') throw new InjectError(this.pid, `Task ${this.pid} ended during injected ${what} (${w.kind})`);
        if (w.event === 0) throw new InjectError(this.pid, `Task ${this.pid} got signal ${w.signal} during injected ${what}`);
        cont(this.pid); // a group stop (a SIGSTOP sent by someone): on
      }
      const ms = performance.now() - start;
      if (ms > 1000) return false;
      // Spinning first (the calls take tens of µs), then napping: the task may share this CPU.
      if (polls > 20) Atomics.wait((nap ??= new Int32Array(new SharedArrayBuffer(4))), 0, 0, ms < 5 ? 0.02 : 1);
    }
  }

  /** Runs one syscall; returns rax as a signed value (negative errno on failure). */
  call(name: SyscallName, ...args: Arg[]): bigint {
    this.setCall(name, args);
    this.step(`${name}-regs`);
    let r: bigint;
    if (this.way === 'int3') {
      cont(this.pid);
      this.waitStop(name, 'int3');
      r = this.result(name, this.code + 3n);
    } else {
      r = this.runToExit(name, this.code);
    }
    this.calls++;
    if (this.log) this.log(`pid ${this.pid}: ${name}(${args.map((x) => `0x${BigInt.asUintN(64, BigInt(x)).toString(16)}`).join(', ')}) = ${fmtResult(r)}`);
    return r;
  }

  /**
   * Runs one syscall that may wait for stasis meanwhile (a vmsplice into a pipe stasis
   * drains): while the task is in it, `pump` is called again and again, each time doing a
   * piece of the work, until it has none left (it returns false) or the call ends; then the
   * call is waited for. Returns rax as call() does. A pump that throws is not called again, and its error
   * is thrown once the call has ended (the task stopped again, its registers settable).
   */
  callPumping(name: SyscallName, args: Arg[], work: () => boolean): bigint {
    let failed: { e: unknown } | undefined;
    const pump = () => {
      if (failed) return false;
      try {
        return work();
      } catch (e) {
        failed = { e };
        return false;
      }
    };
    const r = this.pumped(name, args, pump);
    if (failed) throw failed.e;
    return r;
  }

  private pumped(name: SyscallName, args: Arg[], pump: () => boolean): bigint {
    this.setCall(name, args);
    this.step(`${name}-regs`);
    let r: bigint;
    if (this.way === 'int3') {
      cont(this.pid);
      this.waitStop(name, 'int3', pump);
      r = this.result(name, this.code + 3n);
    } else {
      syscallStep(this.pid);
      this.waitStop(name, 'syscall');
      this.step(`${name}-entry`);
      syscallStep(this.pid);
      this.waitStop(name, 'syscall', pump);
      this.step(`${name}-exit`);
      this.atExit = true;
      r = this.result(name, this.code + 2n);
    }
    this.calls++;
    if (this.log) this.log(`pid ${this.pid}: ${name}(${args.map((x) => `0x${BigInt.asUintN(64, BigInt(x)).toString(16)}`).join(', ')}) = ${fmtResult(r)} (pumped)`);
    return r;
  }

  /** Runs one syscall and throws SyscallError when it fails. */
  must(name: SyscallName, ...args: Arg[]): bigint {
    const r = this.call(name, ...args);
    if (r < 0n && r > -4096n) throw new SyscallError(name, Number(-r), `injected in pid ${this.pid}`);
    return r;
  }

  /** Waits for the stop a resumed call ends in: a syscall stop, the int3's SIGTRAP, or an interrupt (with `pump`, polling, pumping meanwhile). */
  private waitStop(what: string, kind: 'syscall' | 'int3' | 'interrupt', pump?: () => boolean): void {
    // While the pump has work it runs between polls; once it has none, the wait blocks.
    let pumping = pump !== undefined;
    for (;;) {
      const w = waitPid(this.pid, pumping);
      if (!w) {
        if (!pump?.()) pumping = false;
        continue;
      }
      if (w.kind !== 'stopped') {
        throw new InjectError(this.pid, `Task ${this.pid} ended during injected ${what} (${w.kind})`);
      }
      if (kind === 'interrupt' ? w.event === PTRACE_EVENT.STOP : (w.signal & 0x7f) === SIG.SIGTRAP && w.event === 0) return;
      if (w.event !== 0) {
        // An event stop (a group stop from a SIGSTOP sent by someone): keep going.
        if (kind === 'syscall') syscallStep(this.pid);
        else cont(this.pid);
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
  /** Puts a C string; a NUL inside (out of a damaged image) would name another file: refused. */
  putString(s: string): bigint {
    if (s.includes('\0')) throw new StasisError('E_CORRUPT', `Cannot pass ${JSON.stringify(s)} to pid ${this.pid}: it holds a NUL byte`);
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
    this.scratchAddr = this.must('mmap', 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    this.scratchSize = size;
    this.scratchUsed = 0;
  }

  /** Puts the task back as it was: code bytes, scratch mapping, registers and signal mask. */
  end(regs: Regs = this.saved): void {
    if (this.escaped) {
      // Its own registers and mask are back (rt_sigreturn): nothing is set, the mappings made for it stay.
      this.mem.close();
      return;
    }
    if (this.framePage) this.must('munmap', this.framePage, 4096);
    this.framePage = 0n;
    if (this.scratchSize) this.must('munmap', this.scratchAddr, this.scratchSize);
    this.scratchSize = 0;
    if (this.way === 'int3') {
      if (this.savedCode) this.mem.write(this.code, this.savedCode);
      setRegs(this.pid, regs);
      setSigmask(this.pid, this.savedMask);
    } else {
      if (this.page) {
        const r = this.runAt(this.page.edge, 'munmap', [this.page.addr, this.page.size], false);
        if (r !== 0n) throw new SyscallError('munmap', Number(-r), `injected in pid ${this.pid}`);
      }
      if (this.atExit && BigInt.asIntN(64, regs.orig_rax) >= 0n && ERESTART.has(BigInt.asIntN(64, regs.rax))) {
        interrupt(this.pid);
        cont(this.pid);
        this.waitStop('the end of injection', 'interrupt');
        this.step('interrupted');
      }
      setSigmask(this.pid, this.savedMask);
      this.step('mask-back');
      setRegs(this.pid, regs);
    }
    this.mem.close();
  }

  /**
   * Runs a last syscall that may take the code away (munmap of the code page) and stops at
   * its exit through PTRACE_SYSCALL, so nothing runs after it; then sets `regs`.
   */
  finishWith(regs: Regs, name: SyscallName, ...args: Arg[]): bigint {
    this.setCall(name, args);
    for (let stop = 0; stop < 2; stop++) {
      syscallStep(this.pid);
      const w = waitPid(this.pid);
      if (!w || w.kind !== 'stopped' || (w.signal & 0x7f) !== SIG.SIGTRAP) {
        throw new InjectError(this.pid, `Task ${this.pid} did not stop at the syscall of its final ${name}`);
      }
    }
    const r = this.outRegs.get().readBigInt64LE(OFF.rax);
    setRegs(this.pid, regs);
    this.mem.close();
    return r;
  }
}

/** callMany()'s table: per call its number, six arguments and a result slot (NOT_RUN until it has run). */
function batchTable(calls: readonly (readonly [SyscallName, readonly Arg[]])[]): Buffer {
  const table = Buffer.alloc(calls.length * BATCH_ENTRY);
  calls.forEach(([name, args], i) => {
    table.writeBigUInt64LE(BigInt(SYS[name]), i * BATCH_ENTRY);
    for (let k = 0; k < 6; k++) table.writeBigUInt64LE(BigInt.asUintN(64, BigInt(args[k] ?? 0)), i * BATCH_ENTRY + 8 + 8 * k);
    table.writeBigUInt64LE(NOT_RUN, i * BATCH_ENTRY + 56);
  });
  return table;
}

/** A batch as errors and the log name it. */
function batchName(calls: readonly (readonly [SyscallName, readonly Arg[]])[]): string {
  return `${calls.length} calls (${calls[0]![0]}...)`;
}

function fmtResult(r: bigint): string {
  return r < 0n && r > -4096n ? `-${errnoName(Number(-r))}` : `0x${BigInt.asUintN(64, r).toString(16)}`;
}
