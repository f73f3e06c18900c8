// Turning a fresh task (a clone of the stub, stopped, with its pid) into the dumped task,
// in stages whose order matters:
//   1. rseq off: the stub's registration would fault once its memory is gone;
//   2. address space: unmap, map, fill, protect, vDSO, mm fields (address-space.ts);
//   3. identity: name, umask, cwd/root, session and group;
//   4. fds, signal handlers and other per-task state, rlimits, queued signals;
//   5. rseq and the robust list at the image's addresses;
//   6. the last syscall unmaps the scratch area, then registers, FPU state and the blocked
//      mask go in, all from outside.
import { getRseqConfig, getFpu, setFpu, setSigmask, setRlimit, joinFpu, type Regs, Injector } from '../sys/index.js';
import type { UserX86RegsEntry } from '../image/gen/stasis/core-x86_pb.js';
import type { CoreEntry } from '../image/gen/stasis/core_pb.js';
import { cloneWithPid } from './create-task.js';
import { rebuildAddressSpace, setComm } from './address-space.js';
import { installFds } from './install-fds.js';
import { addEpollTargets } from '../files/index.js';
import { takePosixLocks } from './restore-locks.js';
import type { FileLockEntry } from '../image/gen/stasis/file-lock_pb.js';
import { restoreTaskInternals, requeueSignals, drainSignals } from './task-internals.js';
import { restorePosixTimers } from './posix-timers.js';
import type { TaskInternals } from '../dump/task-internals.js';
import { regPath, type ImageSet, type TaskImages } from './read-images.js';
import type { OpenFiles } from './open-files.js';
import type { ShmemObjects } from './shmem-objects.js';
import { isShmemVma, type VmaSpec } from '../mem/vma.js';
import { StasisError } from '../errors.js';
import type { FpuFields } from '../sys/fpu-layout.js';

const RSEQ_FLAG_UNREGISTER = 1;
const SIGKILL = 9, SIGSTOP = 19;

function check(inj: Injector, what: string, r: bigint): void {
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot ${what} in pid ${inj.pid}: errno ${-r}`);
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
  };
}

export interface RestoreTaskCtx {
  set: ImageSet;
  files: OpenFiles;
  /** Epoll instances whose targets a task has added already (a shared one is filled once). */
  epollsFilled: Set<number>;
  /** Shared memory objects made in stasis, for the shared VMAs. */
  shmem?: ShmemObjects;
  /** filelocks.img: the task takes its POSIX locks once its fds are in. */
  locks?: FileLockEntry[];
  /** The kernel has PR_TIMER_CREATE_RESTORE_IDS: POSIX timers are made at their ids directly. */
  timerRestoreIds?: boolean;
}

export function restoreTask(ctx: RestoreTaskCtx, t: TaskImages, child: { pid: number; code: bigint }): number[] {
  const pid = child.pid;
  const tids = [pid];
  const inj = new Injector(pid, { code: child.code, codeInPlace: true });
  const stubRseq = getRseqConfig(pid);
  if (stubRseq.rseqAbiPointer) {
    check(inj, 'unregister the stub\'s rseq', inj.call('rseq', stubRseq.rseqAbiPointer, stubRseq.rseqAbiSize, RSEQ_FLAG_UNREGISTER, stubRseq.signature));
  }

  const vmas: VmaSpec[] = t.mm.vmas.map((v) => ({
    start: v.start, end: v.end, pgoff: v.pgoff, shmid: v.shmid, prot: v.prot, flags: v.flags, status: v.status,
    madv: v.madv ?? 0n, fdflags: v.fdflags ?? 0,
  }));
  const filePaths = new Map<number, string>();
  for (const v of vmas) if (v.status & (64 | 128) && !isShmemVma(v)) filePaths.set(Number(v.shmid), regPath(ctx.set, Number(v.shmid)));
  const m = t.mm;
  const { scratch, scratchSize } = rebuildAddressSpace(inj, {
    vmas, filePaths, pageSources: t.pageSources, runs: t.runs,
    ...(ctx.shmem ? { shmemFd: (v: VmaSpec) => ctx.shmem!.fdFor(v) } : {}),
    mm: {
      startCode: m.mmStartCode, endCode: m.mmEndCode, startData: m.mmStartData, endData: m.mmEndData,
      startStack: m.mmStartStack, startBrk: m.mmStartBrk, brk: m.mmBrk, argStart: m.mmArgStart, argEnd: m.mmArgEnd,
      envStart: m.mmEnvStart, envEnd: m.mmEnvEnd, auxv: m.mmSavedAuxv, exePath: regPath(ctx.set, m.exeFileId),
    },
  });

  const tc = t.core.tc!, th = t.core.threadCore!;
  setComm(inj, th.comm ?? tc.comm);
  inj.call('umask', t.fs.umask ?? 0o022);
  inj.resetScratch();
  check(inj, 'chdir', inj.call('chdir', inj.putString(regPath(ctx.set, t.fs.cwdId))));
  const root = regPath(ctx.set, t.fs.rootId);
  if (root !== '/') {
    inj.resetScratch();
    check(inj, 'chroot', inj.call('chroot', inj.putString(root)));
  }

  installFds(inj, t.fdinfos.map((d) => ({ fd: d.fd, toolFd: ctx.files.get(d.id), cloexec: (d.flags & 1) !== 0 })));
  takePosixLocks(inj, ctx.locks ?? []);
  // Once every fd is in place: epoll targets are fds of the task that added them.
  for (const d of t.fdinfos) {
    const f = ctx.set.files.get(d.id);
    if (f?.epfd && !ctx.epollsFilled.has(d.id)) {
      addEpollTargets(inj, d.fd, f);
      ctx.epollsFilled.add(d.id);
    }
  }
  restoreTaskInternals(inj, internalsFrom(t));
  tc.rlimits?.rlimits.forEach((l, r) => setRlimit(pid, r, { cur: l.cur, max: l.max }));
  drainSignals(inj);
  requeueSignals(inj, pid, pid,
    (tc.signalsS?.signals ?? []).map((s) => Buffer.from(s.siginfo)),
    (th.signalsP?.signals ?? []).map((s) => Buffer.from(s.siginfo)));
  if (th.rseqEntry) {
    const r = th.rseqEntry;
    check(inj, 'register rseq', inj.call('rseq', r.rseqAbiPointer, r.rseqAbiSize, 0, r.signature));
  }
  if (th.futexRla) check(inj, 'set the robust futex list', inj.call('set_robust_list', th.futexRla, th.futexRlaLen));

  // The other threads: cloned by the leader (its mask, all blocked, is inherited), then
  // each sets up what only a thread can set for itself. Their queued signals are sent by the
  // leader: only the thread group's leader may queue a signal with a positive si_code.
  for (const { tid, core } of t.threads) {
    const made = cloneWithPid(inj, tid, CLONE_THREAD_FLAGS);
    tids.push(made.pid);
    const ti = new Injector(made.pid, { code: inj.code, codeInPlace: true });
    ti.useScratch(scratch + THREAD_SCRATCH, 65536);
    restoreThread(ti, core);
    requeueSignals(inj, pid, tid, [], (core.threadCore!.signalsP?.signals ?? []).map((s) => Buffer.from(s.siginfo)));
    ti.finishWith(regsFrom(core.threadInfo!.gpregs!), 'getpid');
    finishThread(tid, core);
  }
  // Once every thread is there (a SIGEV_THREAD_ID timer names one), and after the pending
  // signals were queued: a timer firing from now on adds its own.
  restorePosixTimers(inj, tc.timers?.posix ?? [], ctx.timerRestoreIds ?? false);

  const r = inj.finishWith(regsFrom(t.core.threadInfo!.gpregs!), 'munmap', scratch, scratchSize);
  if (r !== 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot unmap the restore scratch area of pid ${pid}: errno ${-r}`);
  finishThread(pid, t.core);
  return tids;
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

/** From outside, once the thread runs no more injected code: FPU state and blocked mask. */
function finishThread(tid: number, core: CoreEntry): void {
  const fresh = getFpu(tid);
  setFpu(tid, { xsave: fresh.xsave, data: joinFpu(fresh.data, core.threadInfo!.fpregs! as unknown as FpuFields) });
  setSigmask(tid, core.threadCore!.blkSigset ?? core.tc?.blkSigset ?? 0n);
}
