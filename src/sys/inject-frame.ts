// What makes an injection survive its tracer's death: a signal frame that rt_sigreturn turns
// back into the task's own registers, signal mask and FPU state, and code that runs
// `syscall` then rt_sigreturn. The task's code is never written: the first and last
// syscalls of an injection run at a `syscall; ret` already in the task's text (libc has
// several), whose `ret` lands on the task's own `__restore_rt` with the frame on its stack,
// below the red zone (memory the ABI leaves free: the kernel puts signal frames there); the
// rest run in a page of stasis's own, mapped by the first and unmapped by the last.
import fs from 'node:fs';
import path from 'node:path';
import { ProcMem } from './task-mem.js';
import type { Regs } from './regs.js';
import { xstateComponent } from './cpuid.js';

/** struct rt_sigframe (x86_64): pretcode, then struct ucontext, then siginfo; the FPU state after. */
const UC = 8, UC_FLAGS = UC + 0, UC_STACK = UC + 16, MCONTEXT = UC + 40, SIGMASK = UC + 296;
const FRAME_HEAD = 8 + 304 + 128;
/** UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, as the kernel sets them for its own frames. */
const UC_FLAGS_VALUE = 7n;
/** An ss_flags value sigaltstack refuses (EINVAL), so rt_sigreturn leaves the alternate stack as it is. */
const SS_FLAGS_KEEP = 3;
const FP_XSTATE_MAGIC1 = 0x46505853, FP_XSTATE_MAGIC2 = 0x46505845;
const SW_RESERVED = 464, XSTATE_BV = 512;
/** The one dynamic XSAVE component: AMX tile data, in a task's area only once it was granted. */
const XFEATURE_TILEDATA = 1n << 18n;

/** Where the standard-format XSAVE area of `features` ends (legacy area and header: 576). */
const ends = new Map<bigint, number>();
function xstateEnd(features: bigint): number {
  const known = ends.get(features);
  if (known !== undefined) return known;
  let end = 576;
  for (let i = 2; i < 64; i++) {
    if (!((features >> BigInt(i)) & 1n)) continue;
    const c = xstateComponent(i);
    if (c.len > 0) end = Math.max(end, c.off + c.len);
  }
  ends.set(features, end);
  return end;
}
const RED_ZONE = 128n;

/** Offsets in struct sigcontext (x86_64) of each register rt_sigreturn restores. */
const SC: [keyof Regs, number][] = [
  ['r8', 0], ['r9', 8], ['r10', 16], ['r11', 24], ['r12', 32], ['r13', 40], ['r14', 48], ['r15', 56],
  ['rdi', 64], ['rsi', 72], ['rbp', 80], ['rbx', 88], ['rdx', 96], ['rax', 104], ['rcx', 112], ['rsp', 120],
  ['rip', 128], ['eflags', 136],
];
const SC_CS = 144, SC_SS = 150, SC_FPSTATE = 184;

/**
 * The code of stasis's page: the injected syscall at 0, then rt_sigreturn of the frame at
 * rsp - 8. A task left there by a dead tracer finishes the syscall and returns to itself.
 */
export const TRAMPOLINE = Buffer.from([0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b]);
export const TRAMPOLINE_SIZE = 64;

/** A signal frame that restores `regs` (already set to restart an interrupted syscall), `mask` and `fpu`. */
export class SigFrame {
  readonly size: number;
  private readonly fpOff = (FRAME_HEAD + 63) & ~63;
  private readonly xstateSize: number;
  private readonly xcr0: bigint;
  constructor(private readonly regs: Regs, private readonly mask: bigint, private readonly fpu: { xsave: boolean; data: Buffer }) {
    // ptrace's XSAVE area is the task's whole user state (its size is the kernel's user
    // size), with XCR0 in the first word of sw_reserved (GDB's convention); a signal frame
    // holds the same area with _fpx_sw_bytes there instead, and MAGIC2 after it.
    const xsave = fpu.xsave && fpu.data.length > 576;
    const xcr0 = xsave ? fpu.data.readBigUInt64LE(SW_RESERVED) : 0n;
    // rt_sigreturn takes no area larger than the task's own (its fpstate's user size): with
    // a larger one it restores x87 and SSE only and resets the rest (AVX-512 registers lost).
    // ptrace's area has room for AMX tile data whether the task may use it or not; a task
    // that was never granted it (ARCH_REQ_XCOMP_PERM) has a smaller one. So the area ends
    // where the last component it holds ends, tile data counted only when it is in use.
    const features = xcr0 & ~(XFEATURE_TILEDATA & ~fpu.data.readBigUInt64LE(XSTATE_BV));
    this.xcr0 = features;
    this.xstateSize = xsave ? Math.min(fpu.data.length, xstateEnd(features)) : 512;
    this.size = this.fpOff + this.xstateSize + 4;
  }

  /** The frame's bytes for address `at` (64-byte aligned), whose first word is `restorer`. */
  bytesAt(at: bigint, restorer: bigint): Buffer {
    const b = Buffer.alloc(this.size);
    b.writeBigUInt64LE(restorer, 0);
    b.writeBigUInt64LE(UC_FLAGS_VALUE, UC_FLAGS);
    b.writeInt32LE(SS_FLAGS_KEEP, UC_STACK + 8);
    for (const [name, off] of SC) b.writeBigUInt64LE(BigInt.asUintN(64, this.regs[name]), MCONTEXT + off);
    b.writeUInt16LE(Number(this.regs.cs & 0xffffn), MCONTEXT + SC_CS);
    b.writeUInt16LE(Number(this.regs.ss & 0xffffn), MCONTEXT + SC_SS);
    b.writeBigUInt64LE(at + BigInt(this.fpOff), MCONTEXT + SC_FPSTATE);
    b.writeBigUInt64LE(BigInt.asUintN(64, this.mask), SIGMASK);
    this.fpu.data.copy(b, this.fpOff, 0, this.xstateSize);
    const sw = this.fpOff + SW_RESERVED;
    b.fill(0, sw, sw + 48);
    if (this.xcr0) {
      b.writeUInt32LE(FP_XSTATE_MAGIC1, sw);
      b.writeUInt32LE(this.xstateSize + 4, sw + 4); // extended_size
      b.writeBigUInt64LE(this.xcr0, sw + 8); // xfeatures
      b.writeUInt32LE(this.xstateSize, sw + 16);
      b.writeUInt32LE(FP_XSTATE_MAGIC2, this.fpOff + this.xstateSize);
    }
    return b;
  }
}

export interface Gadgets {
  /** `syscall; ret`. */
  syscallRet: bigint | null;
  /** `mov $15, %rax (or %eax); syscall`: __restore_rt. */
  restorer: bigint | null;
  /** Any `syscall` instruction: the last resort, without a way back. */
  syscall: bigint | null;
}

interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  /** Offset in the file mapped. */
  offset: string;
  path: string;
}

function readMaps(pid: number): Mapping[] {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(/\s+/);
    const [s, e] = (f[0] ?? '').split('-');
    return { start: BigInt(`0x${s}`), end: BigInt(`0x${e}`), perms: f[1] ?? '', offset: f[2] ?? '', path: f.slice(5).join(' ') };
  });
}

const SYSCALL_RET = Buffer.from([0x0f, 0x05, 0xc3]);
const RESTORERS = [Buffer.from([0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]), Buffer.from([0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05])];
const SYSCALL = Buffer.from([0x0f, 0x05]);
const CHUNK = 256 << 10;

/** Where a dump keeps the gadgets it found, for the next dumps of this boot (each is checked before use). */
export const GADGETS_FILE = '/run/stasis/gadgets.json';
const GADGETS_VERSION = 1;
/** The most places kept per gadget (one per library or static program seen lately). */
const GADGETS_KEPT = 8;
const GADGET_KINDS = ['syscallRet', 'restorer', 'syscall'] as const;

interface KnownGadget {
  path: string;
  offset: string;
  rel: bigint;
  bytes: Buffer;
}

/**
 * Where the gadgets were found before, by file and offset in it (a run injects into many
 * tasks and threads of the same libc): each is checked in the task's memory before use, so
 * a file replaced since is searched again. Kept in a run's context, not globally; with
 * `file`, also in that file from one run to the next (the search reads most of libc's text,
 * about 1 ms of a small dump): what it holds is checked as the run's own finds are, so a
 * stale or damaged file costs a search, never a wrong address.
 */
export class GadgetCache {
  private readonly at = new Map<keyof Gadgets, KnownGadget[]>();

  constructor(private readonly file?: string) {
    if (file) this.load(file);
  }

  find(mem: ProcMem, maps: Mapping[]): Gadgets {
    const g: Gadgets = { syscallRet: null, restorer: null, syscall: null };
    const probe = Buffer.alloc(16);
    for (const [k, list] of this.at) {
      for (const c of list) {
        const m = maps.find((x) => x.path === c.path && x.offset === c.offset && x.perms[2] === 'x');
        if (!m || m.start + c.rel + BigInt(c.bytes.length) > m.end) continue;
        if (mem.read(m.start + c.rel, probe, 0, c.bytes.length) === c.bytes.length && probe.subarray(0, c.bytes.length).equals(c.bytes)) {
          g[k] = m.start + c.rel;
          break;
        }
      }
    }
    if (g.syscallRet !== null && g.restorer !== null && g.syscall !== null) return g;
    const found = findGadgets(mem, maps);
    let learnt = false;
    for (const k of GADGET_KINDS) {
      const a = found[k];
      const m = a === null ? undefined : maps.find((x) => x.start <= a && a < x.end);
      if (a === null || !m) continue;
      const len = k === 'syscallRet' ? 3 : k === 'syscall' ? 2 : 9;
      const bytes = Buffer.alloc(len);
      if (mem.read(a, bytes) !== len) continue;
      const list = (this.at.get(k) ?? []).filter((c) => c.path !== m.path || c.offset !== m.offset);
      this.at.set(k, [{ path: m.path, offset: m.offset, rel: a - m.start, bytes }, ...list].slice(0, GADGETS_KEPT));
      learnt = true;
    }
    if (learnt && this.file) this.save(this.file);
    return found;
  }

  /** What an earlier run kept; anything unreadable or unexpected is left out (searched again). */
  private load(file: string): void {
    let j: unknown;
    try {
      j = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      return;
    }
    const o = j as { version?: unknown; gadgets?: Record<string, unknown> };
    if (typeof o !== 'object' || o === null || o.version !== GADGETS_VERSION || typeof o.gadgets !== 'object' || o.gadgets === null) return;
    for (const k of GADGET_KINDS) {
      const list = o.gadgets[k];
      if (!Array.isArray(list)) continue;
      const ok: KnownGadget[] = [];
      for (const e of list.slice(0, GADGETS_KEPT) as { path?: unknown; offset?: unknown; rel?: unknown; bytes?: unknown }[]) {
        if (typeof e !== 'object' || e === null || typeof e.path !== 'string' || typeof e.offset !== 'string') continue;
        if (typeof e.rel !== 'string' || !/^[0-9a-f]{1,16}$/.test(e.rel) || typeof e.bytes !== 'string' || !/^([0-9a-f]{2}){2,16}$/.test(e.bytes)) continue;
        ok.push({ path: e.path, offset: e.offset, rel: BigInt(`0x${e.rel}`), bytes: Buffer.from(e.bytes, 'hex') });
      }
      if (ok.length) this.at.set(k, ok);
    }
  }

  /** Keeps the gadgets for the next run, where it may (root's /run); a run that cannot goes without. */
  private save(file: string): void {
    const gadgets = Object.fromEntries([...this.at].map(([k, list]) => [k, list.map((c) => ({ path: c.path, offset: c.offset, rel: c.rel.toString(16), bytes: c.bytes.toString('hex') }))]));
    const tmp = `${file}.${process.pid}`;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, `${JSON.stringify({ version: GADGETS_VERSION, gadgets })}\n`, { mode: 0o600 });
      fs.renameSync(tmp, file);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }
}

/** Searches the task's executable mappings, libc first, for the code an injection needs. */
export function findGadgets(mem: ProcMem, maps: Mapping[] = readMaps(mem.pid)): Gadgets {
  const g: Gadgets = { syscallRet: null, restorer: null, syscall: null };
  const rank = (m: Mapping) => (/\/(libc[.-]|ld-musl)/.test(m.path) ? 0 : m.path === '[vdso]' ? 1 : 2);
  const exec = maps.filter((m) => m.perms[0] === 'r' && m.perms[2] === 'x' && m.path !== '[vsyscall]')
    .sort((a, b) => rank(a) - rank(b) || Number((a.end - a.start) - (b.end - b.start)));
  const buf = Buffer.allocUnsafe(CHUNK + 16);
  for (const m of exec) {
    for (let at = m.start; at < m.end; at += BigInt(CHUNK)) {
      const len = Number(m.end - at < BigInt(CHUNK + 16) ? m.end - at : BigInt(CHUNK + 16));
      const n = mem.read(at, buf, 0, len);
      const view = buf.subarray(0, n);
      if (g.syscallRet === null) {
        const i = view.indexOf(SYSCALL_RET);
        if (i >= 0) g.syscallRet = at + BigInt(i);
      }
      for (const r of RESTORERS) {
        if (g.restorer !== null) break;
        const i = view.indexOf(r);
        if (i >= 0) g.restorer = at + BigInt(i);
      }
      if (g.syscall === null) {
        const i = view.indexOf(SYSCALL);
        if (i >= 0) g.syscall = at + BigInt(i);
      }
      if (g.syscallRet !== null && g.restorer !== null) return g;
      if (n < len) break;
    }
  }
  return g;
}

/**
 * Where a frame of `size` bytes can go below the red zone of a thread whose stack pointer is
 * `rsp`: only in a real stack (the main thread's, or a thread stack with its guard page
 * below), whose free part below rsp nothing else can be using. Null elsewhere (a green
 * thread's stack inside a heap, an alternate stack of unknown extent).
 */
export function stackSlot(pid: number, rsp: bigint, size: number, maps: Mapping[] = readMaps(pid)): bigint | null {
  const at = (rsp - RED_ZONE - BigInt(size)) & ~63n;
  const i = maps.findIndex((m) => m.start <= rsp - 1n && rsp - 1n < m.end);
  const m = maps[i];
  if (!m || !m.perms.startsWith('rw') || at < m.start) return null;
  const below = maps[i - 1];
  const threadStack = m.path === '' && below !== undefined && below.end === m.start && below.perms.startsWith('---');
  return m.path === '[stack]' || threadStack ? at : null;
}

export { readMaps, type Mapping };
