// Everything about one frozen single-threaded task, as CRIU's per-task images hold it:
// core (registers, FPU, signals, timers, rlimits), mm (VMAs, mm fields, auxv), the pages,
// the fds, and fs (cwd, root, umask). Read from /proc, from ptrace, and from syscalls
// injected into the task.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import {
  mountIdOf,
  getRegs, getFpu, getSigmask, peekSiginfo, getRseqConfig, restartedRegs, splitFpu, Injector, type Regs,
  type InjectorOptions, getSched, getAffinity, SCHED_DEADLINE, SCHED_RESET_ON_FORK,
} from '../sys/index.js';
import { parseSmaps, parseStat, parseStatus, parseAuxv, parseLimits, type ProcStat } from '../proc/index.js';
import { CoreEntrySchema, CoreEntry_March, ThreadCoreEntrySchema, type CoreEntry } from '../image/gen/stasis/core_pb.js';
import { UserX86RegsMode, ThreadInfoX86Schema, type UserX86FpregsEntrySchema } from '../image/gen/stasis/core-x86_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { MmEntrySchema, type MmEntry } from '../image/gen/stasis/mm_pb.js';
import { VmaEntrySchema } from '../image/gen/stasis/vma_pb.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { collectVmas, type CollectedVma } from '../mem/collect-vmas.js';
import { VMA, isMappedByRestore, type VmaSpec } from '../mem/vma.js';
import { guardRegions, type GuardRegion } from '../mem/guard-regions.js';
import { readTaskInternals } from './task-internals.js';
import { readPosixTimers } from './posix-timers.js';
import { credsOf, checkLsm, readLoginuid } from './creds.js';
import { fixupRseq, type RseqCsAtFreeze } from './rseq-cs.js';
import { readSeccomp, type ThreadSeccomp } from './seccomp.js';
import type { Frozen } from './freeze.js';
import { emptyFown, keepGoneFile } from '../files/reg.js';
import type { FileIds, GhostDumper } from '../files/index.js';
import { dumpTaskDir } from '../files/task-dirs.js';
import { StasisError } from '../errors.js';

const RLIM_NLIMITS = 16;
const O_RDONLY = 0;
const S_IFMT = 0o170000n, S_IFREG = 0o100000n;

export interface CollectedTask {
  pid: number;
  stat: ProcStat;
  /** One core per thread, the leader's first, with the thread's seccomp (seccomp.ts writes it). */
  cores: { tid: number; core: CoreEntry; seccomp: ThreadSeccomp }[];
  mm: MmEntry;
  vmas: VmaSpec[];
  /** Reg-file entries for the exe, mapped files, cwd and root (fds are collected apart). */
  files: FileEntry[];
  cwdId: number;
  rootId: number;
  umask: number;
}

function regsEntry(r: Regs) {
  return {
    r15: r.r15, r14: r.r14, r13: r.r13, r12: r.r12, bp: r.rbp, bx: r.rbx, r11: r.r11, r10: r.r10, r9: r.r9, r8: r.r8,
    ax: r.rax, cx: r.rcx, dx: r.rdx, si: r.rsi, di: r.rdi, origAx: r.orig_rax, ip: r.rip, cs: r.cs, flags: r.eflags,
    sp: r.rsp, ss: r.ss, fsBase: r.fs_base, gsBase: r.gs_base, ds: r.ds, es: r.es, fs: r.fs, gs: r.gs,
    mode: UserX86RegsMode.NATIVE,
  };
}

function fpuEntry(pid: number): MessageInitShape<typeof UserX86FpregsEntrySchema> {
  const fpu = getFpu(pid);
  const f = splitFpu(fpu.data, fpu.xsave);
  return {
    cwd: f.cwd, swd: f.swd, twd: f.twd, fop: f.fop, rip: f.rip, rdp: f.rdp, mxcsr: f.mxcsr, mxcsrMask: f.mxcsrMask,
    stSpace: f.stSpace, xmmSpace: f.xmmSpace, padding: f.padding,
    ...(f.xsave ? {
      xsave: {
        xstateBv: f.xsave.xstateBv, ymmhSpace: f.xsave.ymmhSpace, bndregState: f.xsave.bndregState,
        bndcsrState: f.xsave.bndcsrState, opmaskReg: f.xsave.opmaskReg, zmmUpper: f.xsave.zmmUpper,
        hi16Zmm: f.xsave.hi16Zmm, pkru: f.xsave.pkru, xtilecfg: [],
      },
    } : {}),
  };
}

function regFile(ids: FileIds, path: string, flags: number, proc: string, withMnt: boolean): FileEntry {
  const id = ids.fresh();
  // Through /proc: the path is the tree's, which in a mount namespace of its own is not stasis's.
  const st = fs.statSync(proc, { bigint: true });
  const mntId = withMnt ? mountIdOf(proc) : undefined;
  return create(FileEntrySchema, {
    type: FdTypes.REG, id,
    reg: { id, flags, pos: 0n, fown: emptyFown(), name: path, mode: Number(st.mode), ...(mntId !== undefined ? { mntId } : {}) },
  });
}

/** The id of the task's executable: one entry for every task of the tree that runs the same file (by inode and path). */
function executable(pid: number, ids: FileIds, withMnt: boolean, files: FileEntry[]): number {
  const proc = `/proc/${pid}/exe`, path = linkOf(pid, 'exe');
  const st = fs.statSync(proc, { bigint: true });
  const key = `exe ${st.dev}:${st.ino} ${withMnt ? mountIdOf(proc) : ''} ${path}`;
  const known = ids.tasksShared.get(key);
  if (known !== undefined) return known;
  const exe = regFile(ids, path, O_RDONLY, proc, withMnt);
  files.push(exe);
  ids.tasksShared.set(key, exe.id);
  return exe.id;
}

/**
 * The regular file entry of the file a VMA maps (one per inode in a task), known by its
 * map_files link: a file unlinked, or replaced under its path, is kept as a ghost (or by a
 * temporary link), as an fd of it would be, and every mapping of it shares that one inode.
 */
function mappedFile(pid: number, c: CollectedVma, byInode: Map<string, number>, files: FileEntry[], ids: FileIds, ghosts?: GhostDumper): number {
  const v = c.vma;
  const proc = `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`;
  const stat = fs.statSync(proc, { bigint: true });
  const link = fs.readlinkSync(proc);
  // In a mount namespace of the tree's own, its mount says which namespace's path it is (mnt-nested.ts).
  const mntId = ghosts?.mntRoot ? mountIdOf(proc) : undefined;
  const key = `map ${stat.dev}:${stat.ino} ${mntId ?? ''} ${link}`;
  const known = byInode.get(key);
  if (known !== undefined) return known;
  const id = ids.fresh();
  const what = `the mapping at 0x${v.start.toString(16)}-0x${v.end.toString(16)}`;
  if ((stat.mode & S_IFMT) !== S_IFREG && link.endsWith(' (deleted)')) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} of pid ${pid}: it maps ${link}, which is not a regular file`);
  }
  const { path, linked } = (stat.mode & S_IFMT) === S_IFREG
    ? keepGoneFile({ pid, what, proc, stat, mntId: mntId ?? 0 }, link, ghosts, () => ids.fresh(), id)
    : { path: link, linked: [] };
  files.push(...linked, create(FileEntrySchema, {
    type: FdTypes.REG, id, reg: { id, flags: O_RDONLY, pos: 0n, fown: emptyFown(), name: path, mode: Number(stat.mode), ...(mntId !== undefined ? { mntId } : {}) },
  }));
  byInode.set(key, id);
  return id;
}

/** The guard regions of the task's own areas (the kernel's vDSO and vsyscall areas have none). */
function readGuards(pid: number, vmas: VmaSpec[]): GuardRegion[] {
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    return guardRegions(fd, vmas.filter(isMappedByRestore), `/proc/${pid}/pagemap`);
  } finally {
    fs.closeSync(fd);
  }
}

function linkOf(pid: number, what: string): string {
  const l = fs.readlinkSync(`/proc/${pid}/${what}`);
  if (l.endsWith(' (deleted)')) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}: its executable ${l.slice(0, -' (deleted)'.length)} was deleted; stasis cannot restore a deleted executable yet`);
  }
  return l;
}

const PR_GET_PDEATHSIG = 2, PR_GET_SECUREBITS = 27, PR_GET_TID_ADDRESS = 40;

/**
 * What each thread has of its own: registers, FPU, mask, signals, rseq, TLS-related addresses.
 * `keep` is told the thread's injector, still open, and ends it (the main thread's: the task's
 * own calls follow in it, not in a second injection of the same thread).
 */
function collectThread(
  pid: number, tid: number, inject: InjectorOptions, rseqCs?: RseqCsAtFreeze, keep?: (inj: Injector) => void,
): { threadInfo: CoreEntry['threadInfo']; threadCore: CoreEntry['threadCore']; seccomp: ThreadSeccomp } {
  const { regs, rseqCsPointer } = fixupRseq(tid, getRegs(tid), rseqCs);
  const fpregs = fpuEntry(tid);
  const sigmask = getSigmask(tid);
  const own = peekSiginfo(tid, false);
  const rseq = getRseqConfig(tid);
  const sched = getSched(tid);
  if ((sched.policy & ~SCHED_RESET_ON_FORK) === SCHED_DEADLINE) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid} of pid ${pid}: it runs under SCHED_DEADLINE, whose runtime, deadline and period stasis does not restore`);
  }
  const affinity = getAffinity(tid);
  const lsm = checkLsm(pid, tid);
  const seccomp = readSeccomp(pid, tid);
  const inj = new Injector(tid, inject);
  let m: Buffer, secbits: number;
  let kept = false;
  try {
    inj.resetScratch();
    const a = inj.put(Buffer.alloc(96));
    inj.must('prctl', PR_GET_TID_ADDRESS, a, 0, 0, 0);
    inj.must('sigaltstack', 0, a + 8n);
    inj.must('get_robust_list', 0, a + 40n, a + 48n);
    inj.must('prctl', PR_GET_PDEATHSIG, a + 56n, 0, 0, 0);
    secbits = Number(inj.must('prctl', PR_GET_SECUREBITS, 0, 0, 0, 0));
    m = inj.mem.readExact(a, 64);
    if (keep) {
      keep(inj);
      kept = true;
    }
  } finally {
    if (!kept) inj.end();
  }
  const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').replace(/\n$/, '');
  return {
    seccomp,
    threadInfo: create(ThreadInfoX86Schema, { clearTidAddr: m.readBigUInt64LE(0), gpregs: regsEntry(restartedRegs(regs)), fpregs, tls: [] }),
    threadCore: create(ThreadCoreEntrySchema, {
      futexRla: m.readBigUInt64LE(40), futexRlaLen: Number(m.readBigUInt64LE(48)), blkSigset: sigmask,
      schedPolicy: sched.policy, schedPrio: sched.prio, schedNice: sched.nice, cpuAffinity: affinity,
      sas: { ssSp: m.readBigUInt64LE(8), ssFlags: m.readInt32LE(16), ssSize: m.readBigUInt64LE(24) },
      pdeathSig: m.readInt32LE(56),
      signalsP: { signals: own.map((s) => ({ siginfo: s })) },
      comm,
      creds: credsOf(parseStatus(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')), secbits, lsm),
      ...(rseq.rseqAbiPointer ? {
        rseqEntry: {
          rseqAbiPointer: rseq.rseqAbiPointer, rseqAbiSize: rseq.rseqAbiSize, signature: rseq.signature,
          ...(rseqCsPointer ? { rseqCsPointer } : {}),
        },
      } : {}),
    }),
  };
}

/**
 * From /proc/PID/limits (the kernel's values, read without sixteen injected calls), else
 * asked of the task itself: prlimit64 on another process needs its uids to match ours or
 * CAP_SYS_RESOURCE, which a task that dropped to another uid and this machine lack.
 */
function readRlimits(inj: Injector): { cur: bigint; max: bigint }[] {
  try {
    const l = parseLimits(fs.readFileSync(`/proc/${inj.pid}/limits`, 'utf8'));
    if (l.length === RLIM_NLIMITS) return l;
  } catch {
    /* another layout: asked of the task */
  }
  inj.resetScratch();
  const buf = inj.put(Buffer.alloc(RLIM_NLIMITS * 16));
  for (let r = 0; r < RLIM_NLIMITS; r++) inj.must('prlimit64', 0, r, 0, buf + BigInt(r * 16));
  const b = inj.mem.readExact(buf, RLIM_NLIMITS * 16);
  return Array.from({ length: RLIM_NLIMITS }, (_, r) => ({ cur: b.readBigUInt64LE(r * 16), max: b.readBigUInt64LE(r * 16 + 8) }));
}

const TASK_ALIVE = 1, TASK_STOPPED = 3;

/** What the freeze found: a job-control stop (by `stopSigno`), threads in rseq critical sections. */
export type FrozenState = Partial<Pick<Frozen, 'stopSigno' | 'rseqCs'>>;

export function collectTask(pid: number, tids: number[], ids: FileIds, ghosts?: GhostDumper, inject: InjectorOptions = {}, frozen: FrozenState = {}): CollectedTask {
  const stopSigno = frozen.stopSigno ?? 0;
  const stat = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const status = parseStatus(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  const files: FileEntry[] = [];

  // Memory layout first: an unsupported mapping fails the dump before anything is touched.
  const collected = collectVmas(pid, parseSmaps(fs.readFileSync(`/proc/${pid}/smaps`, 'utf8')));
  // (By inode and path for the whole tree: a child maps the files its parent does.)
  const byInode = ids.tasksShared;
  for (const c of collected) {
    if (c.path === undefined) continue;
    c.vma.shmid = BigInt(mappedFile(pid, c, byInode, files, ids, ghosts));
  }
  const vmas = collected.map((c) => c.vma);
  const guards = readGuards(pid, vmas);

  const shared = peekSiginfo(pid, true);
  // The main thread's injector stays open for the task's own calls (a second one would write
  // its frame, map its scratch and put it all back again: about 1 ms and four stops).
  let inj: Injector | undefined;
  let threads, internals, brk, posixTimers, rlimits;
  try {
    threads = tids.map((tid) => ({ tid, ...collectThread(pid, tid, inject, frozen.rseqCs?.get(tid), tid === pid ? (i) => (inj = i) : undefined) }));
    inj ??= new Injector(pid, inject);
    internals = readTaskInternals(inj);
    rlimits = readRlimits(inj);
    posixTimers = readPosixTimers(inj, pid);
    brk = BigInt.asUintN(64, inj.must('brk', 0));
  } finally {
    inj?.end();
  }

  const exe = executable(pid, ids, !!ghosts?.mntRoot, files);
  const cwd = dumpTaskDir(pid, 'cwd', ids, ghosts);
  const root = dumpTaskDir(pid, 'root', ids, ghosts);
  files.push(cwd, root);

  // Without its AT_NULL pair, as CRIU keeps it: CRIU's restore refuses more than
  // AT_VECTOR_SIZE (44) words, and the kernel ends the vector itself.
  const auxv = parseAuxv(fs.readFileSync(`/proc/${pid}/auxv`)).slice(0, -2);
  const personality = parseInt(fs.readFileSync(`/proc/${pid}/personality`, 'utf8'), 16);
  const oomScoreAdj = Number(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8'));
  const loginuid = readLoginuid(pid, tids);
  if (internals.thpDisable & ~1) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}: its THP-disable setting ${internals.thpDisable} (PR_THP_DISABLE_EXCEPT_ADVISED) has no place in the image`);
  }
  const [real, virt, prof] = internals.itimers.map((t) => ({ isec: t.isec, iusec: t.iusec, vsec: t.vsec, vusec: t.vusec }));
  const leader = threads[0]!;

  const cores = threads.map((t) => ({
    tid: t.tid,
    seccomp: t.seccomp,
    core: create(CoreEntrySchema, {
      mtype: CoreEntry_March.X86_64,
      threadInfo: t.threadInfo,
      threadCore: t.threadCore,
      // Process-wide state lives in the leader's core.
      ...(t === leader ? {
        tc: {
          taskState: stopSigno ? TASK_STOPPED : TASK_ALIVE, ...(stopSigno ? { stopSigno } : {}), exitCode: 0, personality, flags: stat.flags, blkSigset: t.threadCore!.blkSigset ?? 0n, comm: stat.comm,
          timers: { real, virt, prof, posix: posixTimers },
          rlimits: { rlimits: rlimits.map((l) => ({ cur: l.cur, max: l.max })) },
          signalsS: { signals: shared.map((s) => ({ siginfo: s })) },
          oomScoreAdj,
          ...(loginuid !== undefined ? { loginuid } : {}),
          sigactions: internals.sigactions.map((a) => ({ sigaction: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask })),
          childSubreaper: internals.childSubreaper,
          ...(internals.membarrierMask ? { membarrierRegistrationMask: internals.membarrierMask } : {}),
        },
      } : {}),
    }),
  }));

  const mm = create(MmEntrySchema, {
    mmStartCode: stat.startCode, mmEndCode: stat.endCode, mmStartData: stat.startData, mmEndData: stat.endData,
    mmStartStack: stat.startStack, mmStartBrk: stat.startBrk, mmBrk: brk, mmArgStart: stat.argStart,
    mmArgEnd: stat.argEnd, mmEnvStart: stat.envStart, mmEnvEnd: stat.envEnd, exeFileId: exe,
    mmSavedAuxv: auxv,
    vmas: [
      ...vmas.map((v) => create(VmaEntrySchema, {
        start: v.start, end: v.end, pgoff: v.pgoff, shmid: v.shmid, prot: v.prot, flags: v.flags, status: v.status,
        fd: -1n, madv: v.madv, fdflags: v.fdflags,
      })),
      ...guards.map((g) => create(VmaEntrySchema, { start: g.start, end: g.end, pgoff: 0n, shmid: 0n, prot: 0, flags: 0, status: VMA.GUARD, fd: -1n })),
    ],
    dumpable: internals.dumpable,
    thpDisabled: internals.thpDisable !== 0,
  });

  return { pid, stat, cores, mm, vmas, files, cwdId: cwd.id, rootId: root.id, umask: status.umask ?? 0o022 };
}
