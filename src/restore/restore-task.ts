// Turning a fresh task (a clone of the stub, stopped, with its pid) into the dumped task,
// in stages whose order matters:
//   1. rseq off: the stub's registration would fault once its memory is gone;
//   2. address space: unmap, map, fill, protect, vDSO, mm fields (address-space.ts), then
//      personality, THP-disable, loginuid and oom_score_adj (process-state.ts);
//   3. identity: name, umask, cwd/root, session and group;
//   4. fds, signal handlers and other per-task state, rlimits, queued signals;
//   5. rseq and the robust list at the image's addresses; the threads, each ending with its
//      own credentials; POSIX timers;
//   6. the leader's credentials (privileges dropped last), then pdeath signal and dumpable;
//   7. the last syscall unmaps the scratch area, then registers, FPU state and the blocked
//      mask go in, all from outside.
import {
  getRseqConfig, getFpu, setFpu, setSigmask, setRlimit, joinFpu, type Regs, Injector, failedWith, type InjectorOptions, setSched, setAffinity, ProcMem,
  CLONE_NEWUSER,
} from '../sys/index.js';
import type { UserX86RegsEntry } from '../image/gen/stasis/core-x86_pb.js';
import { TaskCoreEntrySchema, ThreadCoreEntrySchema, type CoreEntry } from '../image/gen/stasis/core_pb.js';
import { isFieldSet } from '@bufbuild/protobuf';
import { cloneWithPid, type NewTask } from './create-task.js';
import { rebuildAddressSpace, setComm } from './address-space.js';
import { installFds, pidfdOfStasis } from './install-fds.js';
import { putThreadPidfds } from './thread-pidfds.js';
import { addEpollTargets, restoreCtty, type TtyRestoreState } from '../files/index.js';
import { takeLocks } from './restore-locks.js';
import type { FileLockEntry } from '../image/gen/stasis/file-lock_pb.js';
import { restoreTaskInternals, restoreAfterCreds, requeueSignals, drainSignals } from './task-internals.js';
import { restoreCreds } from './creds.js';
import type { IdView } from '../ns/index.js';
import { restoreProcessState } from './process-state.js';
import { restorePosixTimers } from './posix-timers.js';
import { installSeccomp, syncedByLeader } from './seccomp.js';
import type { TaskInternals } from '../dump/task-internals.js';
import { regPath, type ImageSet, type TaskImages } from './read-images.js';
import type { OpenFiles } from './open-files.js';
import type { ShmemObjects } from './shmem-objects.js';
import { VMA, areasWithPages, type VmaSpec } from '../mem/vma.js';
import { vmaSpecs, type Premap } from './cow-premap.js';
import { MappedFiles } from './mapped-files.js';
import { StasisError } from '../errors.js';
import { armLazy, fillsLazily, rangesLess, splitLazy, type LazyTask } from '../mem/lazy-pages.js';
import type { FpuFields } from '../sys/fpu-layout.js';

/** The smallest area restore --lazy-pages leaves to the filler (256 KiB). */
const LAZY_MIN_AREA = 256n << 10n;
const PAGE = 4096n;
const RSEQ_FLAG_UNREGISTER = 1;
const SIGKILL = 9, SIGSTOP = 19;

function check(inj: Injector, what: string, r: bigint): void {
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot ${what} in pid ${inj.pid}: ${failedWith(r)}`);
}

function regsFrom(g: UserX86RegsEntry): Regs {
  return {
    r15: g.r15, r14: g.r14, r13: g.r13, r12: g.r12, rbp: g.bp, rbx: g.bx, r11: g.r11, r10: g.r10, r9: g.r9, r8: g.r8,
    rax: g.ax, rcx: g.cx, rdx: g.dx, rsi: g.si, rdi: g.di, orig_rax: g.origAx, rip: g.ip, cs: g.cs, eflags: g.flags,
    rsp: g.sp, ss: g.ss, fs_base: g.fsBase, gs_base: g.gsBase, ds: g.ds, es: g.es, fs: g.fs, gs: g.gs,
  };
}

function internalsFrom(t: TaskImages): TaskInternals {
  const tc = t.core.tc!, th = t.core.threadCore!;
  const sigs: number[] = [];
  for (let s = 1; s <= 64; s++) if (s !== SIGKILL && s !== SIGSTOP) sigs.push(s);
  const it = (e: { isec: bigint; iusec: bigint; vsec: bigint; vusec: bigint } | undefined) =>
    e ? { isec: e.isec, iusec: e.iusec, vsec: e.vsec, vusec: e.vusec } : { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n };
  return {
    sigactions: tc.sigactions.map((a, i) => ({ sig: sigs[i] ?? 0, handler: a.sigaction, flags: a.flags, restorer: a.restorer, mask: a.mask })),
    clearTidAddr: t.core.threadInfo!.clearTidAddr,
    altStack: th.sas ? { sp: th.sas.ssSp, size: th.sas.ssSize, flags: th.sas.ssFlags } : { sp: 0n, size: 0n, flags: 2 },
    itimers: [it(tc.timers?.real), it(tc.timers?.virt), it(tc.timers?.prof)],
    dumpable: t.mm.dumpable ?? -1,
    pdeathSig: th.pdeathSig ?? 0,
    childSubreaper: tc.childSubreaper ?? false,
    membarrierMask: tc.membarrierRegistrationMask ?? 0,
    thpDisable: t.mm.thpDisabled ? 1 : 0,
  };
}

export interface RestoreTaskCtx {
  set: ImageSet;
  files: OpenFiles;
  /** Epoll instances whose targets a task has added already (a shared one is filled once). */
  epollsFilled: Set<number>;
  /** Epoll instances in flight in a socket's queue, by that socket's file id: the first task holding it adds their targets (its fds). */
  epollsInFlight?: Map<number, number[]>;
  /** The terminals made for the restore: a session leader takes its controlling terminal back. */
  ttys?: TtyRestoreState;
  /** The fd tables (files_id) installed already: a task sharing one (CLONE_FILES) has its fds. */
  fdTablesDone?: Set<number>;
  /** Shared memory objects made in stasis, for the shared VMAs. */
  shmem?: ShmemObjects;
  /** filelocks.img: the task takes its locks and leases once its fds are in. */
  locks?: FileLockEntry[];
  /** The kernel has PR_TIMER_CREATE_RESTORE_IDS: POSIX timers are made at their ids directly. */
  timerRestoreIds?: boolean;
  /** Options for the injectors (the log of each injected syscall at -v4). */
  inject?: InjectorOptions;
  /** Where a thread cannot get all the CPUs it had (this machine lacks some) is said. */
  warn?: (message: string) => void;
  /** Opens the files the VMAs map (ghosts from stasis's fds). */
  mapped?: MappedFiles;
  /** The areas each task premapped while the tree was made, by pid (cow-premap.ts). */
  premapped?: Map<number, Premap[]>;
  /** The tree's user namespace's ids to stasis's (credentials are compared as /proc shows them). */
  users?: IdView;
  /**
   * stasis's fd of the tree's user namespace: each task enters it once it has taken from stasis
   * all it needs (pidfd_getfd on stasis is refused to a task of a user namespace below
   * stasis's) and before it makes its threads (setns into a user namespace needs one thread).
   */
  userNsFd?: number;
  /** restore --lazy-pages: each task's lazily filled areas are armed here, and listed for the filler. */
  lazy?: { fileIndex: (path: string) => number; add: (task: LazyTask) => void };
  /** Work of restore's own (a window of a pages file's sums) done while a task reads its pages; false once there is none. */
  meanwhile?: () => boolean;
}

export function restoreTask(ctx: RestoreTaskCtx, t: TaskImages, child: NewTask): number[] {
  const pid = child.pid;
  const tids = [pid];
  const inj = new Injector(pid, { ...ctx.inject, code: child.code, codeInPlace: true });
  const stubRseq = getRseqConfig(pid);
  if (stubRseq.rseqAbiPointer) {
    check(inj, 'unregister the stub\'s rseq', inj.call('rseq', stubRseq.rseqAbiPointer, stubRseq.rseqAbiSize, RSEQ_FLAG_UNREGISTER, stubRseq.signature));
  }

  const vmas = vmaSpecs(t);
  // The premapped areas are the same VMAs, by place and flags.
  const premapped = (ctx.premapped?.get(t.pstree.pid) ?? []).map((p) => ({
    at: p.at, vma: vmas.find((v) => v.start === p.vma.start && v.end === p.vma.end && v.flags === p.vma.flags)!,
  }));
  const m = t.mm;
  const guards = t.mm.vmas.filter((v) => v.status & VMA.GUARD);
  const moved = new Set(premapped.map((p) => p.vma));
  const withPages = areasWithPages(t.runs, vmas);
  // (Small areas are filled at once: the TLS, small heaps and libraries' data are what the rest
  // of the restore (rseq's registration) and the task's first steps touch, and a fault on them
  // would wait for the filler thread's start; the big ones are what lazy filling is for.)
  const lazy = ctx.lazy ? vmas.filter((v) => withPages.has(v) && !moved.has(v) && v.end - v.start >= LAZY_MIN_AREA && fillsLazily(v, guards)) : [];
  // The lazy areas' reads become the filler's pieces; the rest are written now. So are the
  // pages of each thread's rseq area, which the restore itself writes before the tree runs
  // (rseq's registration, and every return from an injected call): a thread's TLS is in its
  // stack's mapping, a lazy area, and a fault there would wait for the filler thread's start.
  const rseqPages = [t.core, ...t.threads.map((x) => x.core)].flatMap((c) => {
    const r = c.threadCore?.rseqEntry;
    return r?.rseqAbiPointer ? [{ start: r.rseqAbiPointer & ~(PAGE - 1n), end: (r.rseqAbiPointer + BigInt(Math.max(r.rseqAbiSize, 32)) + PAGE - 1n) & ~(PAGE - 1n) }] : [];
  });
  const split = ctx.lazy && lazy.length ? splitLazy(t.pageSources, rangesLess(lazy, rseqPages), ctx.lazy.fileIndex) : null;
  const { scratch, scratchSize } = rebuildAddressSpace(inj, {
    vmas, guards, mapped: ctx.mapped ?? new MappedFiles(ctx.set), pageSources: split?.outside ?? t.pageSources, withPages, stasisPidfd: child.stasisPidfd, courier: child.courier, premapped,
    ...(ctx.meanwhile ? { meanwhile: ctx.meanwhile } : {}),
    ...(ctx.shmem ? { shmemFd: (v: VmaSpec) => ctx.shmem!.fdFor(v) } : {}),
    mm: {
      startCode: m.mmStartCode, endCode: m.mmEndCode, startData: m.mmStartData, endData: m.mmEndData,
      startStack: m.mmStartStack, startBrk: m.mmStartBrk, brk: m.mmBrk, argStart: m.mmArgStart, argEnd: m.mmArgEnd,
      envStart: m.mmEnvStart, envEnd: m.mmEnvEnd, auxv: m.mmSavedAuxv, exePath: regPath(ctx.set, m.exeFileId), exeFileId: m.exeFileId,
    },
  });

  // While the task still has stasis's privileges (a uffd that serves the kernel's own faults needs them).
  if (ctx.lazy && split) {
    const uffd = armLazy(inj, lazy);
    ctx.lazy.add({ pid, uffd, pieces: split.pieces });
  }

  const tc = t.core.tc!, th = t.core.threadCore!;
  restoreProcessState(inj, {
    personality: tc.personality, thpDisabled: m.thpDisabled ?? false,
    ...(isFieldSet(tc, TaskCoreEntrySchema.field.loginuid) ? { loginuid: tc.loginuid } : {}),
    ...(isFieldSet(tc, TaskCoreEntrySchema.field.oomScoreAdj) ? { oomScoreAdj: tc.oomScoreAdj } : {}),
  });
  setComm(inj, th.comm ?? tc.comm);
  inj.call('umask', t.fs.umask ?? 0o022);
  enterDirs(inj, ctx, t, child);
  // A session leader's controlling terminal, and its foreground group (every group exists by
  // now), while it can still take the master from stasis.
  if (ctx.ttys && t.pstree.sid === t.pstree.pid) {
    restoreCtty(inj, ctx.ttys, t.pstree.pid, (toolFd) => {
      if (child.courier) return child.courier.take(inj, toolFd);
      const pidfd = pidfdOfStasis(inj, child.stasisPidfd);
      if (pidfd < 0n) return pidfd;
      const fd = inj.call('pidfd_getfd', pidfd, toolFd, 0);
      inj.call('close', pidfd);
      return fd;
    });
  }

  let usernsAt: number | undefined;
  // An fd table shared with a task restored before (CLONE_FILES) is in place already.
  if (!ctx.fdTablesDone?.has(t.ids.filesId)) {
    // An epoll in flight is installed too, above every fd its targets use, for the time its targets are added.
    const inFlight = [...new Set(t.fdinfos.flatMap((d) => ctx.epollsInFlight?.get(d.id) ?? []))].filter((id) => !ctx.epollsFilled.has(id));
    const top = Math.max(2, ...t.fdinfos.map((d) => d.fd), ...inFlight.flatMap((id) => (ctx.set.files.get(id)?.epfd?.tfd ?? []).map((x) => Math.max(x.tfd, x.addedAs ?? 0))));
    const visiting = inFlight.map((id, i) => ({ id, fd: top + 1 + i }));
    // The tree's user namespace, entered once nothing more is taken from stasis (enterUserNs).
    if (ctx.userNsFd !== undefined) usernsAt = top + 1 + visiting.length;
    installFds(inj, [
      ...t.fdinfos.map((d) => ({ fd: d.fd, toolFd: ctx.files.get(d.id), cloexec: (d.flags & 1) !== 0 })),
      ...visiting.map((v) => ({ fd: v.fd, toolFd: ctx.files.get(v.id), cloexec: true })),
      ...(usernsAt !== undefined ? [{ fd: usernsAt, toolFd: ctx.userNsFd!, cloexec: true }] : []),
    ], child.stasisPidfd, child.courier);
    ctx.fdTablesDone?.add(t.ids.filesId);
    // Once every fd is in place: epoll targets are fds of the task that added them. Before the
    // locks: adding a target whose fd was closed moves fds about, and a close drops POSIX locks.
    for (const d of t.fdinfos) {
      const f = ctx.set.files.get(d.id);
      if (f?.epfd && !ctx.epollsFilled.has(d.id)) {
        addEpollTargets(inj, d.fd, f);
        ctx.epollsFilled.add(d.id);
      }
    }
    for (const v of visiting) {
      addEpollTargets(inj, v.fd, ctx.set.files.get(v.id)!);
      check(inj, `close the epoll in flight at fd ${v.fd}`, inj.call('close', v.fd));
      ctx.epollsFilled.add(v.id);
    }
  }
  takeLocks(inj, ctx.locks ?? [], t.pstree.pid);
  restoreTaskInternals(inj, internalsFrom(t));
  tc.rlimits?.rlimits.forEach((l, r) => setRlimit(pid, r, { cur: l.cur, max: l.max }));
  drainSignals(inj);
  const vpid = t.pstree.pid;
  requeueSignals(inj, vpid, vpid,
    (tc.signalsS?.signals ?? []).map((s) => Buffer.from(s.siginfo)),
    (th.signalsP?.signals ?? []).map((s) => Buffer.from(s.siginfo)));
  if (th.rseqEntry) {
    const r = th.rseqEntry;
    check(inj, 'register rseq', inj.call('rseq', r.rseqAbiPointer, r.rseqAbiSize, 0, r.signature));
  }
  if (th.futexRla) check(inj, 'set the robust futex list', inj.call('set_robust_list', th.futexRla, th.futexRlaLen));

  if (ctx.userNsFd !== undefined) enterUserNs(inj, pid, usernsAt);
  // The other threads: cloned by the leader (its mask, all blocked, is inherited), then
  // each sets up what only a thread can set for itself. Their queued signals are sent by the
  // leader: only the thread group's leader may queue a signal with a positive si_code.
  for (const { tid, core } of t.threads) {
    const made = cloneWithPid(inj, tid, CLONE_THREAD_FLAGS, child);
    tids.push(made.pid);
    const ti = new Injector(made.pid, { ...ctx.inject, code: inj.code, codeInPlace: true });
    ti.useScratch(scratch + THREAD_SCRATCH, 65536);
    restoreThread(ti, core);
    requeueSignals(inj, vpid, tid, [], (core.threadCore!.signalsP?.signals ?? []).map((s) => Buffer.from(s.siginfo)));
    // Seccomp, then its own credentials last (a filter needs CAP_SYS_ADMIN or no_new_privs);
    // the leader keeps its privileges to clone the next threads.
    if (!syncedByLeader(core, t.core, ctx.set.seccomp)) installSeccomp(ti, made.pid, core, ctx.set.seccomp);
    const tcore = core.threadCore!;
    if (tcore.creds) restoreCreds(ti, pid, tcore.creds, ctx.users);
    restoreAfterCreds(ti, { pdeathSig: tcore.pdeathSig ?? 0 });
    ti.finishWith(regsFrom(core.threadInfo!.gpregs!), 'getpid');
    finishThread(made.pid, core, ctx.warn);
  }
  // The pidfds of its threads, which stood on the leader until they existed.
  putThreadPidfds(inj, ctx.set, t);
  // Once every thread is there (a SIGEV_THREAD_ID timer names one), and after the pending
  // signals were queued: a timer firing from now on adds its own.
  restorePosixTimers(inj, tc.timers?.posix ?? [], ctx.timerRestoreIds ?? false);
  // Seccomp (restore/seccomp.ts): once every thread is there (TSYNC syncs them), before the
  // credentials (a filter needs CAP_SYS_ADMIN or no_new_privs).
  installSeccomp(inj, pid, t.core, ctx.set.seccomp);
  // Privileges dropped last, then what a change of ids resets.
  if (th.creds) restoreCreds(inj, pid, th.creds, ctx.users);
  restoreAfterCreds(inj, { pdeathSig: th.pdeathSig ?? 0, dumpable: t.mm.dumpable ?? -1 });

  const r = inj.finishWith(regsFrom(t.core.threadInfo!.gpregs!), 'munmap', scratch, scratchSize);
  if (r !== 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot unmap the restore scratch area of pid ${pid}: ${failedWith(r)}`);
  finishThread(pid, t.core, ctx.warn);
  return tids;
}

/**
 * cwd and root, from the directories stasis opened (a deleted one was made again for the
 * opening and is gone by now): the task takes each with pidfd_getfd, fchdir()s into the cwd
 * and chroot()s through /proc/self/fd of the root.
 */
function enterDirs(inj: Injector, ctx: RestoreTaskCtx, t: TaskImages, child: NewTask): void {
  inj.resetScratch();
  const pidfd = pidfdOfStasis(inj, child.stasisPidfd);
  check(inj, 'open a pidfd of stasis', pidfd);
  try {
    const take = (id: number, what: string) => {
      const fd = child.courier ? child.courier.take(inj, ctx.files.get(id)) : inj.call('pidfd_getfd', pidfd, ctx.files.get(id), 0);
      check(inj, `take the ${what}`, fd);
      return fd;
    };
    const cwd = take(t.fs.cwdId, 'working directory');
    const r = inj.call('fchdir', cwd);
    inj.call('close', cwd);
    check(inj, 'fchdir', r);
    if (regPath(ctx.set, t.fs.rootId) !== '/') {
      const root = take(t.fs.rootId, 'root directory');
      const c = inj.call('chroot', inj.putString(`/proc/self/fd/${root}`));
      inj.call('close', root);
      check(inj, 'chroot', c);
    }
  } finally {
    inj.call('close', pidfd);
  }
}

const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM
const THREAD_SCRATCH = 768n * 1024n;

/** What a thread sets for itself: clear_child_tid, alternate stack, rseq, robust list. */
function restoreThread(ti: Injector, core: CoreEntry): void {
  const th = core.threadCore!;
  check(ti, 'set clear_child_tid', ti.call('set_tid_address', core.threadInfo!.clearTidAddr));
  if (th.sas && !(th.sas.ssFlags & 2)) {
    const ss = Buffer.alloc(24);
    ss.writeBigUInt64LE(th.sas.ssSp, 0);
    ss.writeInt32LE(th.sas.ssFlags & ~1, 8);
    ss.writeBigUInt64LE(th.sas.ssSize, 16);
    ti.resetScratch();
    check(ti, 'set the alternate signal stack', ti.call('sigaltstack', ti.put(ss), 0));
  }
  if (th.rseqEntry) {
    const r = th.rseqEntry;
    check(ti, 'register rseq', ti.call('rseq', r.rseqAbiPointer, r.rseqAbiSize, 0, r.signature));
  }
  if (th.futexRla) check(ti, 'set the robust futex list', ti.call('set_robust_list', th.futexRla, th.futexRlaLen));
  // By the thread itself: writing another thread's /proc comm is refused (and can block).
  if (th.comm) setComm(ti, th.comm);
}

/**
 * From outside, once the thread runs no more injected code: FPU state, blocked mask, and its
 * scheduling (last: a real-time policy or one CPU would slow the restore's own work).
 */
function finishThread(tid: number, core: CoreEntry, warn?: (message: string) => void): void {
  const th = core.threadCore!;
  const fresh = getFpu(tid);
  setFpu(tid, { xsave: fresh.xsave, data: joinFpu(fresh.data, core.threadInfo!.fpregs! as unknown as FpuFields) });
  // A thread's own mask where the image has one; CRIU keeps the leader's in tc only.
  setSigmask(tid, isFieldSet(th, ThreadCoreEntrySchema.field.blkSigset) ? th.blkSigset : core.tc?.blkSigset ?? 0n);
  // The rseq critical section the thread was in (or had named), as it was: written after the
  // last injected syscall, whose return to user space would have cleared it (dump/rseq-cs.ts).
  const rseq = th.rseqEntry;
  if (rseq?.rseqCsPointer) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(rseq.rseqCsPointer, 0);
    const mem = new ProcMem(tid, true);
    try {
      mem.write(rseq.rseqAbiPointer + 8n, b);
    } finally {
      mem.close();
    }
  }
  // Images without them (older stasis, CRIU without the fields) mean SCHED_OTHER, nice 0, as CRIU reads them.
  try {
    setSched(tid, { policy: th.schedPolicy ?? 0, prio: th.schedPrio ?? 0, nice: th.schedNice ?? 0 });
  } catch (e) {
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore the scheduling of thread ${tid} (policy ${th.schedPolicy ?? 0}, priority ${th.schedPrio ?? 0}, nice ${th.schedNice ?? 0}): ${(e as Error).message}`, { cause: e });
  }
  if (th.cpuAffinity.length) {
    const got = setAffinity(tid, th.cpuAffinity);
    const same = got.length === th.cpuAffinity.length && got.every((w, i) => w === th.cpuAffinity[i]);
    if (!same) warn?.(`thread ${tid} runs on CPUs ${mask(got)}, not ${mask(th.cpuAffinity)} as it did: this machine lacks some of them`);
  }
}

function mask(words: bigint[]): string {
  return '0x' + [...words].reverse().map((w, i) => w.toString(16).padStart(i ? 16 : 1, '0')).join('');
}

/** The task joins the tree's user namespace through the fd of it installed at `at`, and closes it. */
function enterUserNs(inj: Injector, pid: number, at: number | undefined): void {
  if (at === undefined) throw new StasisError('E_UNSUPPORTED', `Cannot restore pid ${pid} in its user namespace: it shares the fd table of a task restored before it (CLONE_FILES), and stasis enters a user namespace through an fd of its own table`);
  const r = inj.call('setns', at, CLONE_NEWUSER);
  inj.call('close', at);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore pid ${pid}: it could not join its user namespace: setns failed with ${failedWith(r)}`);
}
