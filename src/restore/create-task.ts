// Creating a task with a chosen PID. A throwaway stub (any small program, started with
// posix_spawn) is seized and made to call clone3 with set_tid; CLONE_PARENT makes the new
// task a child of stasis, so stasis can wait for it. The new task is a copy of the stub,
// stopped by ptrace, ready to be turned into the restored task.
import fs from 'node:fs';
import {
  Injector, failedWith, getRegs, seize, interrupt, waitPid, kill, spawnTask, resolveExecutable, memfdCreate, MFD_CLOEXEC, closeFd,
  PTRACE_O, PTRACE_EVENT,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { COURIER_FD, type FdCourier } from './fd-courier.js';
import { sleepSync } from '../sys/sleep.js';

const CLONE_PARENT = 0x8000, CLONE_THREAD = 0x10000, SIGCHLD = 17, CLONE_NEWPID = 0x20000000, CLONE_NEWTIME = 0x80;
const CLONE_NEWUSER = 0x10000000, CLONE_NEWNET = 0x40000000, CLONE_NEWIPC = 0x08000000, CLONE_NEWUTS = 0x04000000, CLONE_NEWCGROUP = 0x02000000;
const O_RDONLY = 0, O_CLOEXEC = 0o2000000, AT_FDCWD = -100;
const CLONE_ARGS_SIZE = 88;
// TRACEFORK too: a clone3 whose exit signal is SIGCHLD counts as a fork for ptrace.
export const TRACE_OPTIONS = PTRACE_O.EXITKILL | PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.TRACESYSGOOD;

export interface NewTask {
  /** Its pid in stasis's pid namespace. */
  pid: number;
  /** Address of the `syscall; int3` bytes the task inherited from its stub. */
  code: bigint;
  /**
   * In a pid namespace below stasis's: the task cannot name stasis by pid (pidfd_open), so it
   * holds a pidfd of stasis at this fd, inherited from the stub, closed when its fds are installed.
   */
  stasisPidfd?: number;
  /** In a user namespace below stasis's from birth: stasis's files come through this (fd-courier.ts), the task's end at COURIER_FD. */
  courier?: FdCourier;
}

/** Where a task in a pid namespace of its own keeps its pidfd of stasis until its fds are in. */
export const STASIS_PIDFD = 1000;

/**
 * Starts the stub from a memfd copy of `sleep`: PR_SET_MM_MAP refuses (EBUSY) to replace an
 * executable that the new layout still maps, so a restored `sleep` (or any program mapping
 * the stub's file) could not get its exe back if the stub ran the file itself.
 */
export function spawnStub(): number {
  const devnull = { path: '/dev/null', flags: 2 };
  const fd = stubMemfd();
  try {
    // Its fd 3 in the stub; every restored task closes what it inherited (install-fds.ts).
    return spawnTask(STUB_ARGV, { exe: STUB_EXE, passFds: [fd], stdin: devnull, stdout: devnull, stderr: devnull });
  } finally {
    closeFd(fd);
  }
}

/** The stub's program, run from its fd 3, a memfd copy of `sleep` (stubMemfd). */
export const STUB_EXE = '/proc/self/fd/3', STUB_ARGV = ['sleep', '3600'];

/** A memfd holding a copy of `sleep` (the caller closes it). */
export function stubMemfd(): number {
  const fd = memfdCreate('stasis-stub', MFD_CLOEXEC);
  try {
    fs.writeSync(fd, fs.readFileSync(resolveExecutable('sleep')));
    return fd;
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/**
 * Waits (up to 3 s) while `pid` belongs to a dead task that its parent has not reaped yet:
 * right after a dump killed a tree, init may still be collecting its zombies.
 */
export function pidIsFree(pid: number): boolean {
  const until = Date.now() + 3000;
  for (;;) {
    let state: string;
    try {
      state = /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
    } catch {
      return true;
    }
    if (state !== 'Z' && state !== 'X') return false;
    if (Date.now() > until) return false;
    sleepSync(10);
  }
}

/**
 * Injects clone3(set_tid = [pid]) into a stopped task that stasis traces; returns the child.
 * `flags` may hold CLONE_NEW* flags: the child is then the first task of new namespaces.
 */
export function cloneWithPid(inj: Injector, pid: number, flags: number, parent?: NewTask): NewTask {
  // In a pid namespace below stasis's, clone3 answers with the pid the caller sees.
  const inner = parent?.stasisPidfd !== undefined;
  const tid = Buffer.alloc(4);
  tid.writeInt32LE(pid, 0);
  const tidAddr = inj.put(tid);
  const args = Buffer.alloc(CLONE_ARGS_SIZE);
  args.writeBigUInt64LE(BigInt(flags), 0);
  // A process tells its parent of its death with SIGCHLD (else wait() without __WALL
  // would not see it); a thread tells nobody; with CLONE_PARENT the caller's is inherited.
  if (!(flags & (CLONE_THREAD | CLONE_PARENT))) args.writeBigUInt64LE(BigInt(SIGCHLD), 32);
  args.writeBigUInt64LE(tidAddr, 64); // set_tid
  args.writeBigUInt64LE(1n, 72); // set_tid_size
  // EEXIST also while a dead group or session still holds the number (its members not yet
  // reaped after a dump killed the tree): retry for a while unless a live task has it.
  const until = Date.now() + 3000;
  let r = inj.call('clone3', inj.put(args), CLONE_ARGS_SIZE);
  while (r === -17n && !inner && Date.now() < until && pidIsFree(pid)) {
    sleepSync(10);
    r = inj.call('clone3', inj.put(args), CLONE_ARGS_SIZE);
  }
  if (r === -17n) throw new StasisError('E_PID_TAKEN', `Cannot restore pid ${pid}: another process has it`);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot create pid ${pid}: clone3 failed with ${failedWith(r)}`);
  const child = inner ? hostPidOf(Number(r), inj.pid, flags) : Number(r);
  const w = waitPid(child);
  if (!w || w.kind !== 'stopped' || w.event !== PTRACE_EVENT.STOP) {
    throw new StasisError('E_RESTORE_FAILED', `New task ${child} did not start stopped`);
  }
  return { pid: child, code: inj.code, ...(inner ? { stasisPidfd: parent.stasisPidfd } : {}), ...(parent?.courier ? { courier: parent.courier } : {}) };
}

/**
 * A failed restore's end of helpers cloned with cloneWithPid (holders of namespaces): each is
 * killed and waited for by stasis, its tracer. Until then it stays a zombie its parent cannot
 * reap, and a parent that is the init of a pid namespace, killed too, would wait for it forever
 * (zap_pid_ns_processes), as would stasis for that init.
 */
export function killHelpers(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      kill(pid, 9);
    } catch {
      continue; // gone with the root's pid namespace
    }
    try {
      for (;;) {
        const w = waitPid(pid);
        if (w && (w.kind === 'exited' || w.kind === 'signaled')) break;
      }
    } catch {
      /* reaped already (ECHILD) */
    }
  }
}

/** The pid in stasis's namespace of the task `caller` just made, `vpid` in the caller's. */
function hostPidOf(vpid: number, caller: number, flags: number): number {
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const childrenOf = (p: number) => fs.readdirSync(`/proc/${p}/task`).flatMap((t) => read(`/proc/${p}/task/${t}/children`).split(' ').filter(Boolean).map(Number));
  let candidates: number[];
  if (flags & CLONE_THREAD) candidates = fs.readdirSync(`/proc/${caller}/task`).map(Number);
  else if (flags & CLONE_PARENT) candidates = childrenOf(Number(/^PPid:\s+(\d+)/m.exec(read(`/proc/${caller}/status`))?.[1] ?? 0));
  else candidates = childrenOf(caller);
  for (const c of candidates) {
    const ns = /^NSpid:\s+(.*)$/m.exec(read(`/proc/${c}/status`))?.[1]?.trim().split(/\s+/).map(Number) ?? [];
    if (ns.length > 1 && ns[ns.length - 1] === vpid) return c;
  }
  throw new StasisError('E_RESTORE_FAILED', `Cannot find the task pid ${caller} made as pid ${vpid} of its namespace`);
}

/**
 * Namespaces under a user namespace of the tree's own: a holder task is cloned by the stub in a
 * new user namespace, `fill` writes its maps, it unshares the others (`flags`, owned by it),
 * `fill` fills them, and the stub joins them all but the user namespace (the tasks stay in
 * stasis's, where they can take files from stasis, until restore-task.ts has them enter it).
 * `keep` gets stasis's fd of the user namespace.
 */
export interface UserNsHolder {
  flags: number;
  fill: (holderPid: number) => void;
  keep: (userNsFd: number) => void;
}

/** The /proc/PID/ns files of the namespaces the stub joins after the holder made them. */
export const HOLDER_NS: [number, string][] = [
  [CLONE_NEWPID, 'pid_for_children'], [CLONE_NEWNET, 'net'], [CLONE_NEWIPC, 'ipc'], [CLONE_NEWUTS, 'uts'], [CLONE_NEWCGROUP, 'cgroup'],
];

/** The root (still a stub, alone in its process) unshares a time namespace, gets its offsets and enters it. */
export function enterOwnTimeNs(root: NewTask, offsets: string): void {
  const ri = new Injector(root.pid, { code: root.code, codeInPlace: true });
  try {
    const u = ri.call('unshare', CLONE_NEWTIME);
    if (u < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot make the tree's time namespace in its user namespace: unshare failed with ${failedWith(u)}`);
    fs.writeFileSync(`/proc/${root.pid}/timens_offsets`, offsets);
    joinNamespace(ri, '/proc/self/ns/time_for_children', CLONE_NEWTIME);
  } finally {
    ri.end();
  }
}

function makeUserNs(inj: Injector, h: UserNsHolder, timeOffsets?: string): void {
  withUserNsHolder(inj, h, timeOffsets, (holder) => {
    for (const [flag, name] of HOLDER_NS) if (h.flags & flag) joinNamespace(inj, `/proc/${holder}/ns/${name}`, flag);
    if (timeOffsets !== undefined) joinNamespace(inj, `/proc/${holder}/ns/time_for_children`, CLONE_NEWTIME);
  });
}

/**
 * The stub `inj` makes the holder of the tree's user namespace and its namespaces (filled);
 * `use` gets it while it lives (it is killed after).
 */
export function withUserNsHolder(inj: Injector, h: UserNsHolder, timeOffsets: string | undefined, use: (holder: number) => void): void {
  const unknown = h.flags & ~HOLDER_NS.reduce((f, [flag]) => f | flag, CLONE_NEWUSER);
  if (unknown) throw new StasisError('E_UNSUPPORTED', `Cannot restore namespaces 0x${unknown.toString(16)} of the tree under its user namespace`);
  const args = Buffer.alloc(CLONE_ARGS_SIZE);
  args.writeBigUInt64LE(BigInt(CLONE_PARENT | CLONE_NEWUSER), 0);
  const r = inj.call('clone3', inj.put(args), CLONE_ARGS_SIZE);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot make the tree's user namespace: clone3 failed with ${failedWith(r)}`);
  const holder = Number(r);
  try {
    const w = waitPid(holder);
    if (!w || w.kind !== 'stopped') throw new StasisError('E_RESTORE_FAILED', `The user namespace holder ${holder} did not start stopped`);
    h.keep(fs.openSync(`/proc/${holder}/ns/user`, O_RDONLY | O_CLOEXEC));
    const hi = new Injector(holder, { code: inj.code, codeInPlace: true });
    try {
      const rest = (h.flags & ~CLONE_NEWUSER) | (timeOffsets !== undefined ? CLONE_NEWTIME : 0);
      if (rest) {
        const u = hi.call('unshare', rest);
        if (u < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot make the tree's namespaces in its user namespace: unshare failed with ${failedWith(u)}`);
      }
    } finally {
      hi.end();
    }
    if (timeOffsets !== undefined) fs.writeFileSync(`/proc/${holder}/timens_offsets`, timeOffsets);
    h.fill(holder);
    use(holder);
  } finally {
    kill(holder, 9);
    waitPid(holder);
  }
}

/**
 * Creates a child of stasis with the given pid, stopped and traced, in new namespaces of the
 * kinds in `nsFlags` (CLONE_NEW*), after joining those of `join` (setns in the stub); under a
 * user namespace of its own, in those `holder` makes.
 */
export function createRootTask(pid: number, nsFlags = 0, join: { file: string; flag: number }[] = [], timeOffsets?: string, holder?: UserNsHolder, courier?: FdCourier): NewTask {
  if (holder) nsFlags = holder.flags & CLONE_NEWPID;
  // (A pid namespace joined, or made, has pids of its own: stasis's say nothing of them.)
  if (!(nsFlags & CLONE_NEWPID) && !join.some((j) => j.flag === CLONE_NEWPID) && !pidIsFree(pid)) {
    throw new StasisError('E_PID_TAKEN', `Cannot restore pid ${pid}: another process has it`);
  }
  return withSeizedStub((stub, inj) => {
    for (const j of join) joinNamespace(inj, j.file, j.flag);
    // A time namespace for the stub's children, its offsets set before the root enters it;
    // under a user namespace of the tree's, made inside it, which owns it (below).
    const userTime = timeOffsets !== undefined && (holder !== undefined || (nsFlags & CLONE_NEWUSER) !== 0);
    if (timeOffsets !== undefined && !userTime) {
      const r = inj.call('unshare', CLONE_NEWTIME);
      if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot make a time namespace: unshare failed with ${failedWith(r)}`);
      fs.writeFileSync(`/proc/${stub}/timens_offsets`, timeOffsets);
    }
    if (holder) makeUserNs(inj, holder, userTime ? timeOffsets : undefined);
    // Joined by the stub, a pid namespace is the one its children are born in: none is made.
    const own = holder ? 0 : nsFlags;
    if (!(nsFlags & CLONE_NEWPID)) return cloneWithPid(inj, pid, CLONE_PARENT | own);
    // Inside, stasis has no pid: the root and its descendants inherit a pidfd of it instead.
    const fd = inj.call('pidfd_open', process.pid, 0);
    if (fd < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open a pidfd of stasis in the stub: ${failedWith(fd)}`);
    const at = inj.call('dup3', fd, STASIS_PIDFD, O_CLOEXEC);
    if (at < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot move the stub's pidfd of stasis to fd ${STASIS_PIDFD}: ${failedWith(at)}`);
    if (courier) {
      // Its end of the courier, inherited by the root and every task it makes.
      const c = inj.call('pidfd_getfd', fd, courier.theirs, 0);
      if (c < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot take the courier socket into the stub: ${failedWith(c)}`);
      const to = inj.call('dup3', c, COURIER_FD, O_CLOEXEC);
      inj.call('close', c);
      if (to < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot move the courier socket to fd ${COURIER_FD}: ${failedWith(to)}`);
    }
    const root: NewTask = { ...cloneWithPid(inj, pid, CLONE_PARENT | own), stasisPidfd: STASIS_PIDFD, ...(courier ? { courier } : {}) };
    // Born in its user namespace: it makes its time namespace there and enters it at once.
    if (userTime && !holder) enterOwnTimeNs(root, timeOffsets!);
    return root;
  });
}

/** A stub of stasis's own, seized and stopped, lent to `use` with its injector, then killed. */
export function withSeizedStub<T>(use: (stub: number, inj: Injector) => T): T {
  const stub = spawnStub();
  try {
    seize(stub, TRACE_OPTIONS);
    interrupt(stub);
    waitPid(stub);
    // The int3 way: the stub's clones inherit the code at its rip (create-tree.ts).
    return use(stub, new Injector(stub, { code: getRegs(stub).rip }));
  } finally {
    kill(stub, 9);
    waitPid(stub);
  }
}

/** The stub enters the namespace at `file` (its clones are born there): open, setns, close. */
export function joinNamespace(inj: Injector, file: string, flag: number): void {
  const fd = inj.call('openat', AT_FDCWD, inj.putString(file), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open namespace file ${file} to join it: ${failedWith(fd)}`);
  const r = inj.call('setns', fd, flag);
  inj.call('close', fd);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot join the namespace of ${file}: setns failed with ${failedWith(r)}`);
}
