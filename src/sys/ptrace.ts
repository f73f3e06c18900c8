// ptrace and wait4, always from the one thread that traces (ptrace is per thread), with
// __WALL and an explicit pid.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const PTRACE = {
  CONT: 7, KILL: 8, DETACH: 17, SYSCALL: 24, SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201,
  GETSIGINFO: 0x4202, GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207,
  LISTEN: 0x4208, PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b,
  SECCOMP_GET_FILTER: 0x420c, SECCOMP_GET_METADATA: 0x420d, GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1, TRACEFORK: 2, TRACEVFORK: 4, TRACECLONE: 8, TRACEEXEC: 0x10, TRACEEXIT: 0x40,
  EXITKILL: 0x100000, SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, EXIT: 6, STOP: 128 } as const;
export const NT = { PRSTATUS: 1, PRFPREG: 2, X86_XSTATE: 0x202 } as const;
export const SIG = { SIGKILL: 9, SIGTRAP: 5, SIGSTOP: 19, SIGCHLD: 17, SIGCONT: 18 } as const;

const WALL = 0x40000000;
const WNOHANG = 1;

function ptrace(req: number, pid: number, addr: bigint | number = 0, data: bigint | number = 0): bigint {
  try {
    return syscall('ptrace', req, pid, addr, data);
  } catch (e) {
    if (e instanceof SyscallError) throw new SyscallError(`ptrace(${ptraceName(req)})`, e.errno, `pid ${pid}`);
    throw e;
  }
}

function ptraceName(req: number): string {
  for (const [k, v] of Object.entries(PTRACE)) if (v === req) return k;
  return String(req);
}

export function seize(pid: number, options = 0): void {
  ptrace(PTRACE.SEIZE, pid, 0, options);
}
export function interrupt(pid: number): void {
  ptrace(PTRACE.INTERRUPT, pid);
}
export function cont(pid: number, sig = 0): void {
  ptrace(PTRACE.CONT, pid, 0, sig);
}
export function syscallStep(pid: number, sig = 0): void {
  ptrace(PTRACE.SYSCALL, pid, 0, sig);
}
export function detach(pid: number, sig = 0): void {
  ptrace(PTRACE.DETACH, pid, 0, sig);
}
export function setOptions(pid: number, options: number): void {
  ptrace(PTRACE.SETOPTIONS, pid, 0, options);
}
export function getEventMsg(pid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE.GETEVENTMSG, pid, 0, addressOf(b));
  return b.readBigUInt64LE(0);
}

/** Reads a register set; returns the bytes the kernel filled. */
export function getRegset(pid: number, type: number, maxSize: number): Buffer {
  const data = Buffer.alloc(maxSize);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(data), 0);
  iov.writeBigUInt64LE(BigInt(maxSize), 8);
  ptrace(PTRACE.GETREGSET, pid, type, addressOf(iov));
  keepAlive(data, iov);
  const len = Number(iov.readBigUInt64LE(8));
  return data.subarray(0, len);
}

export function setRegset(pid: number, type: number, data: Buffer): void {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  ptrace(PTRACE.SETREGSET, pid, type, addressOf(iov));
  keepAlive(data, iov);
}

export function getSigmask(pid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE.GETSIGMASK, pid, 8, addressOf(b));
  return b.readBigUInt64LE(0);
}
export function setSigmask(pid: number, mask: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  ptrace(PTRACE.SETSIGMASK, pid, 8, addressOf(b));
  keepAlive(b);
}

/** Pending signals without dequeuing them: each a 128-byte siginfo. */
export function peekSiginfo(pid: number, shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  const batch = 32;
  const args = Buffer.alloc(16);
  const buf = Buffer.alloc(128 * batch);
  for (let off = 0; ; off += batch) {
    args.writeBigUInt64LE(BigInt(off), 0);
    args.writeUInt32LE(shared ? 1 : 0, 8);
    args.writeInt32LE(batch, 12);
    const n = Number(ptrace(PTRACE.PEEKSIGINFO, pid, addressOf(args), addressOf(buf)));
    keepAlive(args, buf);
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * 128, (i + 1) * 128)));
    if (n < batch) return out;
  }
}

/**
 * A thread's seccomp filter `index` (0 is the newest) as its sock_filter instructions (8
 * bytes each) and flags (SECCOMP_FILTER_FLAG_LOG); null past the oldest. Needs CAP_SYS_ADMIN.
 */
export function getSeccompFilter(tid: number, index: number): { filter: Buffer; flags: number } | null {
  const buf = Buffer.alloc(4096 * 8); // BPF_MAXINSNS
  let n: bigint;
  try {
    n = ptrace(PTRACE.SECCOMP_GET_FILTER, tid, index, addressOf(buf));
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ENOENT') return null;
    throw e;
  }
  keepAlive(buf);
  const meta = Buffer.alloc(16);
  meta.writeBigUInt64LE(BigInt(index), 0);
  ptrace(PTRACE.SECCOMP_GET_METADATA, tid, meta.length, addressOf(meta));
  keepAlive(meta);
  return { filter: Buffer.from(buf.subarray(0, Number(n) * 8)), flags: Number(meta.readBigUInt64LE(8)) };
}

export interface RseqConfig {
  rseqAbiPointer: bigint;
  rseqAbiSize: number;
  signature: number;
  flags: number;
}
export function getRseqConfig(pid: number): RseqConfig {
  const b = Buffer.alloc(24);
  ptrace(PTRACE.GET_RSEQ_CONFIGURATION, pid, b.length, addressOf(b));
  return {
    rseqAbiPointer: b.readBigUInt64LE(0),
    rseqAbiSize: b.readUInt32LE(8),
    signature: b.readUInt32LE(12),
    flags: b.readUInt32LE(16),
  };
}

export type WaitResult =
  | { kind: 'exited'; pid: number; code: number }
  | { kind: 'signaled'; pid: number; signal: number; core: boolean }
  | { kind: 'stopped'; pid: number; signal: number; event: number; status: number };

export function decodeStatus(pid: number, status: number): WaitResult {
  const sig = status & 0x7f;
  if (sig === 0) return { kind: 'exited', pid, code: (status >> 8) & 0xff };
  if ((status & 0xff) === 0x7f) {
    return { kind: 'stopped', pid, signal: (status >> 8) & 0xff, event: (status >> 16) & 0xff, status };
  }
  return { kind: 'signaled', pid, signal: sig, core: (status & 0x80) !== 0 };
}

/**
 * How long a blocking waitPid() polls before it sleeps. A stop the tracer caused (an injected
 * call's, an interrupt's) comes within tens of µs, and a tracer asleep in wait4 on an idle vCPU
 * of this machine is woken some tens of µs later still (the host wakes a halted vCPU): polling
 * took the ~300 stops of a small task's dump (two per injected call) from 25 to 22 ms.
 */
const SPIN_MS = 0.2;

/** wait4(pid, __WALL); null with noHang when nothing changed yet. */
export function waitPid(pid: number, noHang = false): WaitResult | null {
  const st = new Int32Array(1);
  const spinUntil = noHang ? 0 : performance.now() + SPIN_MS;
  for (;;) {
    const spin = !noHang && performance.now() < spinUntil;
    const r = syscallRaw('wait4', pid, addressOf(st), WALL | (noHang || spin ? WNOHANG : 0), 0);
    if (r === 0n && spin) continue;
    if (r === -4n) continue; // EINTR
    if (r < 0n) throw new SyscallError('wait4', Number(-r), `pid ${pid}`);
    if (r === 0n) return null;
    return decodeStatus(Number(r), st[0] ?? 0);
  }
}

/**
 * One thread's general registers through buffers made once (the injector's hot path: a
 * GETREGSET or SETREGSET per call, without allocating or asking koffi for addresses).
 */
export class RegsIo {
  readonly buf: Buffer;
  private readonly iov = Buffer.alloc(16);
  private readonly iovAddr: bigint;
  constructor(readonly pid: number, size: number) {
    this.buf = Buffer.alloc(size);
    this.iov.writeBigUInt64LE(addressOf(this.buf), 0);
    this.iovAddr = addressOf(this.iov);
  }
  /** Reads the registers into buf. */
  get(): Buffer {
    this.iov.writeBigUInt64LE(BigInt(this.buf.length), 8);
    this.req(PTRACE.GETREGSET);
    return this.buf;
  }
  /** Writes buf as the registers. */
  set(): void {
    this.iov.writeBigUInt64LE(BigInt(this.buf.length), 8);
    this.req(PTRACE.SETREGSET);
  }
  private req(r: number): void {
    const res = syscallRaw('ptrace', r, this.pid, NT.PRSTATUS, this.iovAddr);
    keepAlive(this.buf, this.iov);
    if (res < 0n) throw new SyscallError(`ptrace(${ptraceName(r)})`, Number(-res), `pid ${this.pid}`);
  }
}
