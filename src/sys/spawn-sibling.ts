// Starting a program as a child of this process's parent (CRIU's --restore-sibling): only a
// clone with CLONE_PARENT made by this process itself gives the caller (runc) the child, as
// posix_spawn has no such flag and a clone from any child of ours gives it to us. The clone
// runs in a page of our own code (as cpuid.ts's instruction does), vfork style (CLONE_VM |
// CLONE_VFORK, on our stack, this thread held until the exec): the child, on the parent's
// memory, runs a list of raw syscalls (signal dispositions to default, the mask, its fds,
// execve) and nothing else, and it writes where it failed into the request it shares. With
// noExec it is a plain fork instead, which sets its fds and waits in pause() for a tracer.
import fs from 'node:fs';
import { koffi, protoOnFirstUse } from './koffi-addon.js';
import { syscallRaw, addressOf, keepAlive } from './libc.js';
import { SYS, type SyscallName } from './syscall-table.js';
import { SyscallError } from './syscall-error.js';
import { codePage } from './code-page.js';
import { sleepSync } from './sleep.js';

// rdi = request {clone_args, size, ops, n ops, out: failed op, out: its result}.
// push rbx; mov rbx, rdi; clone3([rbx], [rbx+8]); parent: pop rbx; ret (rax = pid or -errno).
// child: for each op of 40 bytes {nr, a1..a4}: syscall, stop on a negative result; then
// [rbx+32] = its index, [rbx+40] = its result; exit_group(127). (execve returns only on failure.)
const CODE = Buffer.from(
  '534889fbb8b3010000488b3b488b73080f054885c074025bc34c8b63104531ed4c3b6b187328498b0424498b7c2408' +
  '498b742410498b5424184d8b5424200f054885c078094983c42849ffc5ebd24c896b2048894328b8e7000000bf7f00' +
  '00000f05ebea',
  'hex',
);
const SpawnFn = protoOnFirstUse('int64 stasis_spawn_sibling(uint64 req)');

const CLONE_VM = 0x100, CLONE_VFORK = 0x4000, CLONE_PARENT = 0x8000, CLONE_NEWPID = 0x20000000;
const SIG_SETMASK = 2, SIGKILL = 9, SIGSTOP = 19, F_DUPFD_CLOEXEC = 1030;
const CLONE_ARGS_SIZE = 88, OP_SIZE = 40;

/** The code page, made on first use: code of this process, constant like cpuid's. */
let fn: unknown = null;
let page = 0n;

function spawnFn(): unknown {
  if (fn !== null) return fn;
  const made = codePage(CODE, 'the sibling clone');
  page = made.addr;
  fn = made.fn;
  return fn;
}

export interface SiblingSpawn {
  /** The program (a path this process can open), argv and environment. */
  exe: string;
  argv: string[];
  env: string[];
  /** CLONE_NEW* flags: the child is the first task of new namespaces. */
  nsFlags?: number;
  /** The child's pid (clone3's set_tid: in a new pid namespace, its pid there). */
  pid?: number;
  /** Fds of this process given to the child as [ours, its]; it has no other. */
  fds: [number, number][];
  /**
   * No exec: the child is a copy of this process (fork, its memory copied on write) that waits
   * in pause() once its fds are set, for a tracer to make something of it; `exe` is not run.
   * For a child born in a user namespace: an exec there before it has maps would take its
   * capabilities in it away.
   */
  noExec?: boolean;
}

/** Where a child made with `noExec` has room for code of a tracer's own (in its copy of the clone's code page, past the code). */
export function spareCodeOfSibling(): bigint {
  spawnFn();
  return page + 2048n;
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

/** A NULL-terminated array of pointers to the strings, and the buffers it points into. */
function cstrArray(list: string[]): { arr: Buffer; keep: Buffer[] } {
  const keep = list.map(cstr);
  const arr = Buffer.alloc(8 * (list.length + 1));
  keep.forEach((b, i) => arr.writeBigUInt64LE(addressOf(b), 8 * i));
  return { arr, keep };
}

/**
 * Starts `o.exe` as a child of our parent and returns its pid (in our pid namespace) once it
 * has exec'd. Fails with SyscallError('clone3') (EEXIST: the pid is taken; EINVAL also when
 * this process is the init of its pid namespace), or with the syscall the child failed.
 */
export function spawnSibling(o: SiblingSpawn): number {
  const keep: Buffer[] = [];
  const put = (b: Buffer) => {
    keep.push(b);
    return addressOf(b);
  };
  // Ours above every fd the child gets: a dup3 neither finds its source replaced nor needs src == dst.
  const top = Math.max(2, ...o.fds.map(([, d]) => d)) + 1;
  const srcs: number[] = [];
  const dfl = Buffer.alloc(32); // struct sigaction: SIG_DFL, no flags, empty mask
  const empty = Buffer.alloc(8);
  try {
    for (const [s] of o.fds) {
      const r = syscallRaw('fcntl', s, F_DUPFD_CLOEXEC, top);
      if (r < 0n) throw new SyscallError('fcntl', Number(-r), `F_DUPFD_CLOEXEC of fd ${s} above ${top}`);
      srcs.push(Number(r));
    }
    const ops: [SyscallName, ...(number | bigint)[]][] = [];
    for (let sig = 1; sig <= 64; sig++) if (sig !== SIGKILL && sig !== SIGSTOP) ops.push(['rt_sigaction', sig, put(dfl), 0, 8]);
    ops.push(['rt_sigprocmask', SIG_SETMASK, put(empty), 0, 8]);
    o.fds.forEach(([, d], i) => ops.push(['dup3', srcs[i]!, d, 0]));
    const dsts = [...new Set(o.fds.map(([, d]) => d))].sort((a, b) => a - b);
    let from = 0;
    for (const d of dsts) {
      if (d > from) ops.push(['close_range', from, d - 1, 0]);
      from = d + 1;
    }
    ops.push(['close_range', from, 0xffffffff, 0]);
    const argv = cstrArray(o.argv), env = cstrArray(o.env);
    keep.push(...argv.keep, ...env.keep);
    ops.push(o.noExec ? ['pause'] : ['execve', put(cstr(o.exe)), put(argv.arr), put(env.arr)]);
    const opsBuf = Buffer.alloc(OP_SIZE * ops.length);
    ops.forEach(([name, ...args], i) => {
      opsBuf.writeBigUInt64LE(BigInt(SYS[name]), OP_SIZE * i);
      args.forEach((a, j) => opsBuf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), OP_SIZE * i + 8 * (j + 1)));
    });
    const args = Buffer.alloc(CLONE_ARGS_SIZE);
    args.writeBigUInt64LE(BigInt(CLONE_PARENT | (o.noExec ? 0 : CLONE_VM | CLONE_VFORK) | (o.nsFlags ?? 0)), 0);
    if (o.pid !== undefined) {
      const tid = Buffer.alloc(4);
      tid.writeInt32LE(o.pid, 0);
      args.writeBigUInt64LE(put(tid), 64); // set_tid
      args.writeBigUInt64LE(1n, 72); // set_tid_size
    }
    const req = Buffer.alloc(48);
    req.writeBigUInt64LE(put(args), 0);
    req.writeBigUInt64LE(BigInt(CLONE_ARGS_SIZE), 8);
    req.writeBigUInt64LE(put(opsBuf), 16);
    req.writeBigUInt64LE(BigInt(ops.length), 24);
    req.writeBigInt64LE(-1n, 32);
    // Every signal blocked from before the clone (the child gets our handlers until its ops reset them).
    const all = Buffer.alloc(8, 0xff), old = Buffer.alloc(8);
    syscallRaw('rt_sigprocmask', SIG_SETMASK, addressOf(all), addressOf(old), 8);
    let pid: bigint;
    try {
      pid = BigInt(koffi().call(spawnFn(), SpawnFn(), addressOf(req)) as number | bigint);
    } finally {
      syscallRaw('rt_sigprocmask', SIG_SETMASK, addressOf(old), 0, 8);
      keepAlive(req, all, old, ...keep);
    }
    if (pid < 0n) throw new SyscallError('clone3', Number(-pid), `CLONE_PARENT${o.nsFlags && o.nsFlags & CLONE_NEWPID ? ' | CLONE_NEWPID' : ''}${o.pid !== undefined ? `, pid ${o.pid}` : ''}`);
    if (o.noExec) return waitPaused(Number(pid));
    const at = req.readBigInt64LE(32);
    if (at >= 0n) {
      // It died before its exec; its parent (our caller) reaps it.
      const op = ops[Number(at)];
      const errno = Number(-req.readBigInt64LE(40));
      throw new SyscallError(op?.[0] ?? 'exec', errno, `in child ${pid} of our parent, before it ran ${o.exe}`);
    }
    return Number(pid);
  } finally {
    for (const s of srcs) syscallRaw('close', s);
  }
}

/** A `noExec` child once it waits in pause() (its failures are its own: it exits 127 first). */
function waitPaused(pid: number): number {
  const until = Date.now() + 5000;
  for (;;) {
    let sys = '', state = '';
    try {
      sys = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8');
      state = /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
    } catch {
      state = 'X';
    }
    if (sys.startsWith(`${SYS.pause} `)) return pid;
    if (state === 'Z' || state === 'X') throw new SyscallError('clone3', 3, `its copy ${pid} (no exec) died before it was ready`);
    if (Date.now() > until) throw new SyscallError('clone3', 110, `its copy ${pid} (no exec) did not get ready`);
    sleepSync(1);
  }
}
