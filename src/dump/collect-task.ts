// Everything about one frozen single-threaded task, as CRIU's per-task images hold it:
// core (registers, FPU, signals, timers, rlimits), mm (VMAs, mm fields, auxv), the pages,
// the fds, and fs (cwd, root, umask). Read from /proc, from ptrace, and from syscalls
// injected into the task.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import {
  getRegs, getFpu, getSigmask, peekSiginfo, getRseqConfig, getRlimit, restartedRegs, splitFpu, Injector, type Regs,
} from '../sys/index.js';
import { parseSmaps, parseStat, parseStatus, parseAuxv, type ProcStat } from '../proc/index.js';
import { CoreEntrySchema, CoreEntry_March, ThreadCoreEntrySchema, type CoreEntry } from '../image/gen/stasis/core_pb.js';
import { UserX86RegsMode, ThreadInfoX86Schema, type UserX86FpregsEntrySchema } from '../image/gen/stasis/core-x86_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { MmEntrySchema, type MmEntry } from '../image/gen/stasis/mm_pb.js';
import { VmaEntrySchema } from '../image/gen/stasis/vma_pb.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { collectVmas } from '../mem/collect-vmas.js';
import type { VmaSpec } from '../mem/vma.js';
import { readTaskInternals } from './task-internals.js';
import { readPosixTimers } from './posix-timers.js';
import { emptyFown } from '../files/reg.js';
import type { FileIds } from '../files/index.js';
import { StasisError } from '../errors.js';

const RLIM_NLIMITS = 16;
const O_RDONLY = 0, O_DIRECTORY = 0o200000;

export interface CollectedTask {
  pid: number;
  stat: ProcStat;
  /** One core per thread, the leader's first. */
  cores: { tid: number; core: CoreEntry }[];
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

function regFile(ids: FileIds, path: string, flags: number): FileEntry {
  const id = ids.fresh();
  const st = fs.statSync(path, { bigint: true });
  return create(FileEntrySchema, {
    type: FdTypes.REG, id,
    reg: { id, flags, pos: 0n, fown: emptyFown(), name: path, mode: Number(st.mode) },
  });
}

function linkOf(pid: number, what: string): string {
  const l = fs.readlinkSync(`/proc/${pid}/${what}`);
  if (l.endsWith(' (deleted)')) {
    const name = what === 'exe' ? 'executable' : what === 'cwd' ? 'working directory' : 'root directory';
    throw new StasisError('E_UNSUPPORTED',
      `Cannot dump pid ${pid}: its ${name} ${l.slice(0, -' (deleted)'.length)} was deleted; stasis cannot restore a deleted ${name} yet`);
  }
  return l;
}

const PR_GET_PDEATHSIG = 2, PR_GET_TID_ADDRESS = 40;

/** What each thread has of its own: registers, FPU, mask, signals, rseq, TLS-related addresses. */
function collectThread(pid: number, tid: number): { threadInfo: CoreEntry['threadInfo']; threadCore: CoreEntry['threadCore'] } {
  const regs = getRegs(tid);
  const fpregs = fpuEntry(tid);
  const sigmask = getSigmask(tid);
  const own = peekSiginfo(tid, false);
  const rseq = getRseqConfig(tid);
  const inj = new Injector(tid);
  let m: Buffer;
  try {
    inj.resetScratch();
    const a = inj.put(Buffer.alloc(96));
    inj.must('prctl', PR_GET_TID_ADDRESS, a, 0, 0, 0);
    inj.must('sigaltstack', 0, a + 8n);
    inj.must('get_robust_list', 0, a + 40n, a + 48n);
    inj.must('prctl', PR_GET_PDEATHSIG, a + 56n, 0, 0, 0);
    m = inj.mem.readExact(a, 64);
  } finally {
    inj.end();
  }
  const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').replace(/\n$/, '');
  return {
    threadInfo: create(ThreadInfoX86Schema, { clearTidAddr: m.readBigUInt64LE(0), gpregs: regsEntry(restartedRegs(regs)), fpregs, tls: [] }),
    threadCore: create(ThreadCoreEntrySchema, {
      futexRla: m.readBigUInt64LE(40), futexRlaLen: Number(m.readBigUInt64LE(48)), blkSigset: sigmask,
      sas: { ssSp: m.readBigUInt64LE(8), ssFlags: m.readInt32LE(16), ssSize: m.readBigUInt64LE(24) },
      pdeathSig: m.readInt32LE(56),
      signalsP: { signals: own.map((s) => ({ siginfo: s })) },
      comm,
      ...(rseq.rseqAbiPointer ? { rseqEntry: { rseqAbiPointer: rseq.rseqAbiPointer, rseqAbiSize: rseq.rseqAbiSize, signature: rseq.signature } } : {}),
    }),
  };
}

export function collectTask(pid: number, tids: number[], ids: FileIds): CollectedTask {
  const stat = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const status = parseStatus(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  const files: FileEntry[] = [];

  // Memory layout first: an unsupported mapping fails the dump before anything is touched.
  const collected = collectVmas(pid, parseSmaps(fs.readFileSync(`/proc/${pid}/smaps`, 'utf8')));
  const byPath = new Map<string, number>();
  for (const c of collected) {
    if (c.path === undefined) continue;
    let id = byPath.get(c.path);
    if (id === undefined) {
      const e = regFile(ids, c.path, O_RDONLY);
      files.push(e);
      id = e.id;
      byPath.set(c.path, id);
    }
    c.vma.shmid = BigInt(id);
  }
  const vmas = collected.map((c) => c.vma);

  const shared = peekSiginfo(pid, true);
  const threads = tids.map((tid) => ({ tid, ...collectThread(pid, tid) }));
  const inj = new Injector(pid);
  let internals, brk, posixTimers;
  try {
    internals = readTaskInternals(inj);
    posixTimers = readPosixTimers(inj, pid);
    brk = BigInt.asUintN(64, inj.must('brk', 0));
  } finally {
    inj.end();
  }

  const exe = regFile(ids, linkOf(pid, 'exe'), O_RDONLY);
  const cwd = regFile(ids, linkOf(pid, 'cwd'), O_RDONLY | O_DIRECTORY);
  const root = regFile(ids, linkOf(pid, 'root'), O_RDONLY | O_DIRECTORY);
  files.push(exe, cwd, root);

  const auxv = parseAuxv(fs.readFileSync(`/proc/${pid}/auxv`));
  const rlimits = Array.from({ length: RLIM_NLIMITS }, (_, r) => getRlimit(pid, r));
  const personality = parseInt(fs.readFileSync(`/proc/${pid}/personality`, 'utf8'), 16);
  const oomScoreAdj = Number(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8'));
  const [real, virt, prof] = internals.itimers.map((t) => ({ isec: t.isec, iusec: t.iusec, vsec: t.vsec, vusec: t.vusec }));
  const leader = threads[0]!;

  const cores = threads.map((t) => ({
    tid: t.tid,
    core: create(CoreEntrySchema, {
      mtype: CoreEntry_March.X86_64,
      threadInfo: t.threadInfo,
      threadCore: t.threadCore,
      // Process-wide state lives in the leader's core.
      ...(t === leader ? {
        tc: {
          taskState: 1, exitCode: 0, personality, flags: stat.flags, blkSigset: t.threadCore!.blkSigset ?? 0n, comm: stat.comm,
          timers: { real, virt, prof, posix: posixTimers },
          rlimits: { rlimits: rlimits.map((l) => ({ cur: l.cur, max: l.max })) },
          signalsS: { signals: shared.map((s) => ({ siginfo: s })) },
          oomScoreAdj,
          sigactions: internals.sigactions.map((a) => ({ sigaction: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask })),
          childSubreaper: internals.childSubreaper,
        },
      } : {}),
    }),
  }));

  const mm = create(MmEntrySchema, {
    mmStartCode: stat.startCode, mmEndCode: stat.endCode, mmStartData: stat.startData, mmEndData: stat.endData,
    mmStartStack: stat.startStack, mmStartBrk: stat.startBrk, mmBrk: brk, mmArgStart: stat.argStart,
    mmArgEnd: stat.argEnd, mmEnvStart: stat.envStart, mmEnvEnd: stat.envEnd, exeFileId: exe.id,
    mmSavedAuxv: auxv,
    vmas: vmas.map((v) => create(VmaEntrySchema, {
      start: v.start, end: v.end, pgoff: v.pgoff, shmid: v.shmid, prot: v.prot, flags: v.flags, status: v.status,
      fd: -1n, madv: v.madv, fdflags: v.fdflags,
    })),
    dumpable: internals.dumpable,
  });

  return { pid, stat, cores, mm, vmas, files, cwdId: cwd.id, rootId: root.id, umask: status.umask ?? 0o022 };
}
