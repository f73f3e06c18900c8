// Realistic contents for every image kind, as a dump of a small two-task tree would write
// them. Used by the image tests (crit compatibility, round trips, truncation, fuzzing).
import { TcpStreamEntrySchema } from './gen/stasis/tcp-stream_pb.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { UtsnsEntrySchema } from './gen/stasis/utsns_pb.js';
import { UsernsEntrySchema } from './gen/stasis/userns_pb.js';
import { MntEntrySchema } from './gen/stasis/mnt_pb.js';
import { TimensEntrySchema } from './gen/stasis/timens_pb.js';
import { IpcVarEntrySchema } from './gen/stasis/ipc-var_pb.js';
import { NdType, NetDeviceEntrySchema, NetnsEntrySchema } from './gen/stasis/netdev_pb.js';
import { InventoryEntrySchema, Lsmtype } from './gen/stasis/inventory_pb.js';
import { PstreeEntrySchema } from './gen/stasis/pstree_pb.js';
import {
  CoreEntrySchema, CoreEntry_March, SeccompMode, TaskCoreEntrySchema, TaskKobjIdsEntrySchema, ThreadCoreEntrySchema,
} from './gen/stasis/core_pb.js';
import { ThreadInfoX86Schema, UserDescTSchema, UserX86RegsMode } from './gen/stasis/core-x86_pb.js';
import { RlimitEntrySchema } from './gen/stasis/rlimit_pb.js';
import { ItimerEntrySchema, PosixTimerEntrySchema } from './gen/stasis/timer_pb.js';
import { CredsEntrySchema } from './gen/stasis/creds_pb.js';
import { SaEntrySchema } from './gen/stasis/sa_pb.js';
import { SiginfoEntrySchema } from './gen/stasis/siginfo_pb.js';
import { MmEntrySchema } from './gen/stasis/mm_pb.js';
import { VmaEntrySchema } from './gen/stasis/vma_pb.js';
import { PagemapEntrySchema, PagemapHeadSchema } from './gen/stasis/pagemap_pb.js';
import { FdTypes, FdinfoEntrySchema, FileEntrySchema } from './gen/stasis/fdinfo_pb.js';
import { RegFileEntrySchema } from './gen/stasis/regfile_pb.js';
import { FownEntrySchema } from './gen/stasis/fown_pb.js';
import { PipeEntrySchema } from './gen/stasis/pipe_pb.js';
import { PipeDataEntrySchema } from './gen/stasis/pipe-data_pb.js';
import { FifoEntrySchema } from './gen/stasis/fifo_pb.js';
import { SkPacketEntrySchema } from './gen/stasis/sk-packet_pb.js';
import { UnixSkEntrySchema } from './gen/stasis/sk-unix_pb.js';
import { InetSkEntrySchema } from './gen/stasis/sk-inet_pb.js';
import { SkShutdown } from './gen/stasis/sk-opts_pb.js';
import { FsEntrySchema } from './gen/stasis/fs_pb.js';
import { GhostChunkEntrySchema, GhostFileEntrySchema } from './gen/stasis/ghost-file_pb.js';
import { SeccompEntrySchema } from './gen/stasis/seccomp_pb.js';
import { CgroupEntrySchema } from './gen/stasis/cgroup_pb.js';
import { FileLockEntrySchema } from './gen/stasis/file-lock_pb.js';
import { StatsEntrySchema } from './gen/stasis/stats_pb.js';
import { RemapFilePathEntrySchema, RemapType } from './gen/stasis/remap-file-path_pb.js';
import { TtyDataEntrySchema, TtyFileEntrySchema, TtyInfoEntrySchema, TtyType } from './gen/stasis/tty_pb.js';
import { MemfdFileEntrySchema, MemfdInodeEntrySchema } from './gen/stasis/memfd_pb.js';
import { EventfdFileEntrySchema } from './gen/stasis/eventfd_pb.js';
import type { FramedKindName, GhostFileImage, ImageContent, NameArg } from './image-kinds.js';
import { PE } from './pagemap-flags.js';
import { IpcDescEntrySchema, IpcShmEntrySchema, IpcSemEntrySchema, IpcMsgEntrySchema, IpcMsgSchema } from './gen/stasis/ipc-sysv_pb.js';

function ipcDesc(key: number, mode: number, id: number) {
  return create(IpcDescEntrySchema, { key, uid: 0, gid: 0, cuid: 0, cgid: 0, mode, id });
}

/** A queue's messages as ipcns-msg keeps them: size, IpcMsg, text rounded up to 8 bytes. */
function ipcMsgs(list: [bigint, string][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [mtype, t] of list) {
    const head = toBinary(IpcMsgSchema, create(IpcMsgSchema, { mtype, msize: t.length }));
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, head.length, true);
    const body = new Uint8Array(Math.ceil(t.length / 8) * 8);
    body.set(new TextEncoder().encode(t));
    parts.push(size, head, body);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
import { pagemapEntry } from './compat.js';

const RLIM_INFINITY = 0xffffffffffffffffn;

const fown = () => create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
const itimer = (sec: bigint) => create(ItimerEntrySchema, { isec: 0n, iusec: 0n, vsec: sec, vusec: 250000n });
const text = (s: string) => new TextEncoder().encode(s);

/** A siginfo_t for SIGUSR1 sent by pid 812 (si_signo, si_errno, si_code, si_pid, si_uid). */
function siginfo(): Uint8Array {
  const b = new Uint8Array(128);
  const v = new DataView(b.buffer);
  v.setInt32(0, 10, true);
  v.setInt32(8, 0, true);
  v.setInt32(16, 812, true);
  v.setInt32(20, 1000, true);
  return b;
}

function creds() {
  const caps = [0xffffffff, 0x1ff];
  return create(CredsEntrySchema, {
    uid: 1000, gid: 1000, euid: 1000, egid: 1000, suid: 1000, sgid: 1000, fsuid: 1000, fsgid: 1000,
    capInh: [0, 0], capPrm: [0, 0], capEff: [0, 0], capBnd: caps, secbits: 0, groups: [24, 27, 1000],
  });
}

function core() {
  const regs = {
    r15: 0n, r14: 0x7ffd5e1c2a30n, r13: 0x55ce284ae1a9n, r12: 0n, bp: 0x7ffd5e1c2970n, bx: 0n, r11: 0x246n,
    r10: 0n, r9: 0n, r8: 0n, ax: 0xfffffffffffffdfcn, cx: 0x7f18e08b1a7an, dx: 0n, si: 0x7ffd5e1c2950n,
    di: 0x7ffd5e1c2950n, origAx: 35n, ip: 0x7f18e08b1a7an, cs: 0x33n, flags: 0x246n, sp: 0x7ffd5e1c2948n,
    ss: 0x2bn, fsBase: 0x7f18e07bc740n, gsBase: 0n, ds: 0n, es: 0n, fs: 0n, gs: 0n, mode: UserX86RegsMode.NATIVE,
  };
  const tls = [12, 13, 14].map((n) => create(UserDescTSchema, {
    entryNumber: n, baseAddr: 0, limit: 0, seg32bit: false, contentsH: false, contentsL: false,
    readExecOnly: true, limitInPages: false, segNotPresent: true, usable: false,
  }));
  const threadInfo = create(ThreadInfoX86Schema, {
    clearTidAddr: 0x7f18e07bca10n,
    gpregs: regs,
    fpregs: {
      cwd: 0x37f, swd: 0, twd: 0, fop: 0, rip: 0n, rdp: 0n, mxcsr: 0x1f80, mxcsrMask: 0xffff,
      stSpace: Array.from({ length: 32 }, (_, i) => i * 3),
      xmmSpace: Array.from({ length: 64 }, (_, i) => (i * 0x01010101) >>> 0),
      padding: [],
      xsave: { xstateBv: 7n, ymmhSpace: Array.from({ length: 64 }, (_, i) => i) },
    },
    tls,
  });
  const rlimits = Array.from({ length: 16 }, (_, i) =>
    create(RlimitEntrySchema, i === 7 ? { cur: 1024n, max: 524288n } : { cur: RLIM_INFINITY, max: RLIM_INFINITY }));
  const sigactions = Array.from({ length: 64 }, (_, i) => create(SaEntrySchema, {
    sigaction: i === 9 ? 0x55ce284ad2a0n : 0n, flags: i === 9 ? 0x4000000n : 0n,
    restorer: i === 9 ? 0x7f18e0812050n : 0n, mask: 0n, compatSigaction: false,
  }));
  return create(CoreEntrySchema, {
    mtype: CoreEntry_March.X86_64,
    threadInfo,
    tc: create(TaskCoreEntrySchema, {
      taskState: 1, exitCode: 0, personality: 0, flags: 0x400100, blkSigset: 0n, comm: 'counter',
      timers: { real: itimer(1n), virt: itimer(0n), prof: itimer(0n), posix: [] },
      rlimits: { rlimits }, cgSet: 1, signalsS: { signals: [] }, loginuid: 1000, oomScoreAdj: 0, sigactions,
      childSubreaper: false,
    }),
    ids: create(TaskKobjIdsEntrySchema, {
      vmId: 1, filesId: 2, fsId: 3, sighandId: 4, pidNsId: 5, netNsId: 6, ipcNsId: 7, utsNsId: 8, mntNsId: 9,
      userNsId: 10, cgroupNsId: 11, timeNsId: 12,
    }),
    threadCore: create(ThreadCoreEntrySchema, {
      futexRla: 0x7f18e07bca20n, futexRlaLen: 24, schedNice: -5, schedPolicy: 0, schedPrio: 0, blkSigset: 0n,
      sas: { ssSp: 0n, ssSize: 0n, ssFlags: 2 }, pdeathSig: 0, signalsP: { signals: [{ siginfo: siginfo() }] },
      creds: creds(), seccompMode: SeccompMode.disabled, comm: 'counter',
    }),
  });
}

function vma(start: bigint, end: bigint, status: number, prot: number, flags: number, shmid = 0n, fd = -1n) {
  return create(VmaEntrySchema, { start, end, pgoff: 0n, shmid, prot, flags, status, fd, madv: 0n, fdflags: 0 });
}

const vmas = () => [
  vma(0x55ce284ad000n, 0x55ce284ae000n, 0x41, 1, 2, 17n, 3n),
  vma(0x55ce2b6f4000n, 0x55ce2b715000n, 0x221, 3, 0x22),
  vma(0x7fffa9479000n, 0x7fffa949a000n, 0x203, 3, 0x122),
];

const regFile = (id: number, name: string) => create(RegFileEntrySchema, {
  id, flags: 0o100002, pos: 42n, fown: fown(), name, mntId: 21, size: 8192n, mode: 0o100644,
});

const termios = () => ({
  cIflag: 0x500, cOflag: 5, cCflag: 0xbf, cLflag: 0x8a3b, cLine: 0, cIspeed: 15, cOspeed: 15,
  cCc: [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0],
});

const pagemap = (pagesId: number) => ({
  head: create(PagemapHeadSchema, { pagesId }),
  entries: [
    pagemapEntry(0x55ce284ad000n, 1, PE.PRESENT),
    pagemapEntry(0x55ce2b6f4000n, 33, PE.PRESENT),
    Object.assign(pagemapEntry(0x7fffa9479000n, 4, PE.PARENT), { inParent: true }),
  ],
});

const skPacket = (idFor: number, data: string) => {
  const payload = text(data);
  return { entry: create(SkPacketEntrySchema, { idFor, length: payload.length }), payload };
};
const pipeData = (pipeId: number, data: string) => {
  const payload = text(data);
  return { entry: create(PipeDataEntrySchema, { pipeId, bytes: payload.length, size: 65536 }), payload };
};

function ghostFile(): GhostFileImage {
  const first = new Uint8Array(4096).fill(0x61);
  const second = text('tail of an unlinked file\n');
  return {
    head: create(GhostFileEntrySchema, {
      uid: 1000, gid: 1000, mode: 0o100644, dev: 0xfe00000, ino: 2146474n, rdev: 0,
      atim: { tvSec: 1700000000n, tvUsec: 5n }, mtim: { tvSec: 1700000100n, tvUsec: 6n }, chunks: true,
      size: 16384n + BigInt(second.length),
    }),
    chunks: [
      { entry: create(GhostChunkEntrySchema, { len: BigInt(first.length), off: 0n }), payload: first },
      { entry: create(GhostChunkEntrySchema, { len: BigInt(second.length), off: 16384n }), payload: second },
    ],
  };
}

/** A ghost file stored the old way: the whole contents after the head entry. */
export function sampleFlatGhostFile(): GhostFileImage {
  return {
    head: create(GhostFileEntrySchema, { uid: 0, gid: 0, mode: 0o100600, dev: 0xfe00000, ino: 77n, size: 11n }),
    chunks: [],
    contents: text('hello ghost'),
  };
}

type Samples = { [K in FramedKindName]: { arg: NameArg<K>; content: ImageContent<K> } };

/** Fresh sample contents and a name argument for every framed image kind. */
export function sampleImages(): Samples {
  return {
    inventory: { arg: undefined, content: [create(InventoryEntrySchema, {
      imgVersion: 2, fdinfoPerId: true, nsPerId: true, rootCgSet: 1, lsmtype: Lsmtype.NO_LSM,
      dumpUptime: 987654321n, rootIds: { vmId: 1, filesId: 2, fsId: 3, sighandId: 4, pidNsId: 5, mntNsId: 9 },
    })] },
    pstree: { arg: undefined, content: [
      create(PstreeEntrySchema, { pid: 812, ppid: 0, pgid: 812, sid: 800, threads: [812, 813] }),
      create(PstreeEntrySchema, { pid: 815, ppid: 812, pgid: 812, sid: 800, threads: [815] }),
    ] },
    core: { arg: 812, content: [core()] },
    ids: { arg: 812, content: [create(TaskKobjIdsEntrySchema, { vmId: 1, filesId: 2, fsId: 3, sighandId: 4 })] },
    mm: { arg: 812, content: [create(MmEntrySchema, {
      mmStartCode: 0x55ce284ad000n, mmEndCode: 0x55ce284ae1a9n, mmStartData: 0x55ce284b0db8n,
      mmEndData: 0x55ce284b1010n, mmStartStack: 0x7fffa9498b70n, mmStartBrk: 0x55ce2b6f4000n, mmBrk: 0x55ce2b715000n,
      mmArgStart: 0x7fffa9499e1bn, mmArgEnd: 0x7fffa9499e2bn, mmEnvStart: 0x7fffa9499e2bn,
      mmEnvEnd: 0x7fffa9499fe4n, exeFileId: 17, mmSavedAuxv: [33n, 0x7fffa94f9000n, 16n, 0x178bfbffn, 0n, 0n],
      vmas: vmas(), dumpable: 1, aios: [{ id: 0x7f18e0900000n, nrReq: 128, ringLen: 4096 }], thpDisabled: false,
    })] },
    vmas: { arg: 812, content: vmas() },
    pagemap: { arg: 812, content: pagemap(1) },
    'shmem-pagemap': { arg: 3, content: pagemap(2) },
    files: { arg: undefined, content: [
      create(FileEntrySchema, { type: FdTypes.REG, id: 17, reg: regFile(17, '/srv/demo/sample') }),
      create(FileEntrySchema, { type: FdTypes.PIPE, id: 18, pipe: { id: 18, pipeId: 41234, flags: 0, fown: fown() } }),
      create(FileEntrySchema, { type: FdTypes.TTY, id: 19, tty: { id: 19, ttyInfoId: 1, flags: 0o2, fown: fown() } }),
      create(FileEntrySchema, { type: FdTypes.MEMFD, id: 20, memfd: create(MemfdFileEntrySchema, {
        id: 20, flags: 0o2, pos: 0n, fown: fown(), inodeId: 3,
      }) }),
      create(FileEntrySchema, { type: FdTypes.EVENTFD, id: 21, efd: create(EventfdFileEntrySchema, {
        id: 21, flags: 0o4000, fown: fown(), counter: 5n,
      }) }),
      create(FileEntrySchema, { type: FdTypes.FIFO, id: 22, fifo: { id: 22, pipeId: 41240, regfId: 23 } }),
      create(FileEntrySchema, { type: FdTypes.UNIXSK, id: 26, usk: create(UnixSkEntrySchema, {
        id: 26, ino: 2064798, type: 1, state: 1, flags: 0o4000, uflags: 0, backlog: 0, peer: 2064797, fown: fown(),
        opts: { soSndbuf: 212992, soRcvbuf: 212992, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n },
        name: text(''), shutdown: SkShutdown.WRITE,
      }) }),
      // A listener on 127.0.0.1:8080 and one on [::1]:8081 (v6only); the words are the kernel's, as /proc/net/tcp6 prints them.
      create(FileEntrySchema, { type: FdTypes.INETSK, id: 28, isk: create(InetSkEntrySchema, {
        id: 28, ino: 2064801, family: 2, type: 1, proto: 6, state: 10, srcPort: 8080, dstPort: 0, flags: 0o4002, backlog: 16,
        srcAddr: [0x0100007f], dstAddr: [0], fown: fown(),
        opts: { soSndbuf: 16384, soRcvbuf: 131072, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n,
          reuseaddr: true, soReuseport: false, soKeepalive: true, tcpKeepcnt: 9, tcpKeepidle: 7200, tcpKeepintvl: 75, soBufLock: 0 },
        ipOpts: { freebind: false },
      }) }),
      create(FileEntrySchema, { type: FdTypes.INETSK, id: 29, isk: create(InetSkEntrySchema, {
        id: 29, ino: 2064802, family: 10, type: 1, proto: 6, state: 10, srcPort: 8081, dstPort: 0, flags: 0o2, backlog: 128,
        srcAddr: [0, 0, 0, 0x01000000], dstAddr: [0, 0, 0, 0], fown: fown(),
        opts: { soSndbuf: 65536, soRcvbuf: 65536, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n, soBufLock: 3 },
        v6only: true,
      }) }),
      // A pidfd of pid 813 (non-blocking), and one of a process reaped with exit code 7.
      create(FileEntrySchema, { type: FdTypes.PIDFD, id: 30, pidfd: { id: 30, ino: 16727n, flags: 0o4000, nspid: 813, fown: fown() } }),
      create(FileEntrySchema, { type: FdTypes.PIDFD, id: 31, pidfd: { id: 31, ino: 16728n, flags: 0, nspid: -1, fown: fown(), attr: { exitCode: 7 << 8 } } }),
      // A tun file on a detached queue of tmq0 in network namespace 5: its REG entry, then its own of the same id (CRIU's layout).
      create(FileEntrySchema, { type: FdTypes.REG, id: 32, reg: create(RegFileEntrySchema, { id: 32, flags: 0o100002, pos: 0n, fown: fown(), name: '/dev/net/tun', mode: 0o20666 }) }),
      create(FileEntrySchema, { type: FdTypes.TUNF, id: 32, tunf: { id: 32, netdev: 'tmq0', detached: true, nsId: 5 } }),
    ] },
    fdinfo: { arg: 2, content: [0, 1, 2, 3].map((fd) =>
      create(FdinfoEntrySchema, { id: 17 + fd, flags: fd === 3 ? 1 : 0, type: FdTypes.REG, fd })) },
    'reg-files': { arg: undefined, content: [regFile(17, '/srv/demo/sample'), regFile(23, '/tmp/fifo')] },
    pipes: { arg: undefined, content: [create(PipeEntrySchema, { id: 18, pipeId: 41234, flags: 0o4000, fown: fown() })] },
    'tcp-stream': { arg: 0x7c1ab, content: [{
      entry: create(TcpStreamEntrySchema, {
        inqLen: 5, inqSeq: 0xfffffff0, outqLen: 6, outqSeq: 1853174915, optMask: 7, sndWscale: 10, mssClamp: 65483,
        rcvWscale: 7, timestamp: 1287590206, unsqLen: 2, sndWl1: 1063190063, sndWnd: 65536, maxWindow: 65536,
        rcvWnd: 65483, rcvWup: 1063190063, nodelay: true,
      }),
      payload: text('hellosent!!'),
    }] },
    'pipes-data': { arg: undefined, content: [pipeData(41234, 'hello, pipe'), pipeData(41236, '')] },
    fifo: { arg: undefined, content: [create(FifoEntrySchema, { id: 22, pipeId: 41240, regfId: 23 })] },
    'fifo-data': { arg: undefined, content: [pipeData(41240, 'queued in a fifo\n')] },
    'sk-queues': { arg: undefined, content: [skPacket(26, 'a stream of bytes'), skPacket(27, ''), skPacket(27, 'one datagram')] },
    fs: { arg: 812, content: [create(FsEntrySchema, { cwdId: 24, rootId: 25, umask: 0o22 })] },
    'ghost-file': { arg: 0x2a, content: ghostFile() },
    'remap-fpath': { arg: undefined, content: [
      create(RemapFilePathEntrySchema, { origId: 17, remapId: 0x2a, remapType: RemapType.GHOST }),
    ] },
    cgroup: { arg: undefined, content: [create(CgroupEntrySchema, {
      sets: [
        { id: 1, ctls: [{ name: '', path: '/user.slice' }, { name: 'name=zdtmtst', path: '/' }] },
        { id: 2, ctls: [{ name: '', path: '/stasis/a' }, { name: 'name=zdtmtst', path: '/subcg00' }] },
      ],
      controllers: [
        { cnames: [''], dirs: [{ dirName: 'stasis/a', dirPerms: { mode: 0o40755, uid: 0, gid: 0 }, properties: [
          { name: 'pids.max', value: '42', perms: { mode: 0o100644, uid: 0, gid: 0 } },
          { name: 'cgroup.procs', value: '', perms: { mode: 0o100644, uid: 0, gid: 0 } },
        ] }] },
        { cnames: ['name=zdtmtst'], dirs: [{ dirName: 'subcg00', dirPerms: { mode: 0o40755, uid: 0, gid: 0 },
          children: [{ dirName: 'subsubcg', properties: [{ name: 'notify_on_release', value: '0' }] }] }] },
      ],
    })] },
    'file-locks': { arg: undefined, content: [
      create(FileLockEntrySchema, { flag: 1, type: 1, pid: 812, fd: 3, start: 0n, len: 100n }),
      create(FileLockEntrySchema, { flag: 2, type: 0, pid: 815, fd: -1, start: -1n, len: 0n }),
    ] },
    seccomp: { arg: undefined, content: [create(SeccompEntrySchema, { seccompFilters: [
      // ld [0] (nr); ret ALLOW / ld [0]; jeq 39 (getpid) ? ret ERRNO(1) : ret ALLOW
      { filter: Uint8Array.from(Buffer.from('2000000000000000060000000000ff7f', 'hex')), flags: 0 },
      { filter: Uint8Array.from(Buffer.from('200000000000000015000001270000000600000001000500060000000000ff7f', 'hex')), prev: 0, flags: 1 },
    ] })] },
    stats: { arg: 'dump', content: [create(StatsEntrySchema, { dump: {
      freezingTime: 1200, frozenTime: 35000, memdumpTime: 21000, memwriteTime: 9000, pagesScanned: 12345n,
      pagesSkippedParent: 0n, pagesWritten: 1045n, pagesLazy: 0n, pagePipes: 1n, pagePipeBufs: 3n,
    } })] },
    'tty-files': { arg: undefined, content: [create(TtyFileEntrySchema, { id: 19, ttyInfoId: 1, flags: 0o2, fown: fown() })] },
    'tty-info': { arg: undefined, content: [create(TtyInfoEntrySchema, {
      id: 1, type: TtyType.PTY, locked: false, exclusive: false, packetMode: false, sid: 800, pgrp: 812,
      rdev: (136 << 20) | 3, termios: termios(), termiosLocked: termios(),
      winsize: { wsRow: 24, wsCol: 80, wsXpixel: 0, wsYpixel: 0 }, pty: { index: 3 }, uid: 1000, gid: 5,
    })] },
    'tty-data': { arg: undefined, content: [create(TtyDataEntrySchema, { ttyId: 1, data: text('typed ahead\n') })] },
    'memfd-inode': { arg: undefined, content: [create(MemfdInodeEntrySchema, {
      name: 'memfd:foo bar', uid: 1000, gid: 1000, size: 8192n, shmid: 3, seals: 0x1, inodeId: 3n,
    })] },
    userns: { arg: 7, content: [create(UsernsEntrySchema, {
      uidMap: [{ first: 0, lowerFirst: 100000, count: 1000 }, { first: 1000, lowerFirst: 2000, count: 10 }],
      gidMap: [{ first: 0, lowerFirst: 100000, count: 65536 }],
    })] },
    utsns: { arg: 3, content: [create(UtsnsEntrySchema, { nodename: 'box-812', domainname: '(none)' })] },
    mountpoints: { arg: 13, content: [create(MntEntrySchema, { fstype: 1, mntId: 92, rootDev: 42, parentMntId: 91, flags: 0x200000, root: '/', mountpoint: '/proc', source: 'proc', options: '', sharedId: 0, masterId: 0, sbFlags: 0 })] },
    'ipcns-var': { arg: 4, content: [create(IpcVarEntrySchema, {
      semCtls: [32000, 1024000000, 500, 32000], msgCtlmax: 8192, msgCtlmnb: 16384, msgCtlmni: 32000, autoMsgmni: 0,
      shmCtlmax: 18446744073692774399n, shmCtlall: 18446744073692774399n, shmCtlmni: 4096, shmRmidForced: 0,
      mqQueuesMax: 256, mqMsgMax: 10, mqMsgsizeMax: 8192, mqMsgDefault: 10, mqMsgsizeDefault: 8192,
    })] },
    'ipcns-shm': { arg: 4, content: [{
      entry: create(IpcShmEntrySchema, { desc: ipcDesc(0x5432001, 0o600, 0), size: 6n, inPagemaps: false }), payload: text('shm!\0\0\0\0'),
    }] },
    'ipcns-sem': { arg: 4, content: [{ entry: create(IpcSemEntrySchema, { desc: ipcDesc(0, 0o640, 1), nsems: 3 }), payload: new Uint8Array([1, 0, 2, 0, 3, 0, 0, 0]) }] },
    'ipcns-msg': { arg: 4, content: [{ entry: create(IpcMsgEntrySchema, { desc: ipcDesc(0x77, 0o666, 2), qbytes: 16384, qnum: 2 }), payload: ipcMsgs([[1n, 'first'], [7n, 'second message']]) }] },
    netdev: { arg: 5, content: [
      create(NetDeviceEntrySchema, { type: NdType.LOOPBACK, ifindex: 1, mtu: 65536, flags: 0x10049, name: 'lo' }),
      // A multi-queue tun (IFF_TUN | IFF_MULTI_QUEUE | IFF_NO_PI), not persistent.
      create(NetDeviceEntrySchema, { type: NdType.TUN, ifindex: 2, mtu: 1500, flags: 0x1090, name: 'tmq0', tun: { flags: 0x1101, owner: -1, group: -1, vnethdr: 10, sndbuf: 0x7fffffff } }),
    ] },
    timens: { arg: 6, content: [create(TimensEntrySchema, { monotonic: { tvSec: 1000123n, tvNsec: 500n }, boottime: { tvSec: 1000456n, tvNsec: 0n } })] },
    netns: { arg: 5, content: [create(NetnsEntrySchema, {})] },
    sigacts: { arg: 812, content: core().tc?.sigactions.slice(0, 12) ?? [] },
    creds: { arg: 812, content: [creds()] },
    rlimit: { arg: 812, content: core().tc?.rlimits?.rlimits ?? [] },
    itimers: { arg: 812, content: [itimer(1n), itimer(0n), itimer(0n)] },
    'posix-timers': { arg: 812, content: [create(PosixTimerEntrySchema, {
      itId: 0, clockId: 1, siSigno: 14, itSigevNotify: 0, sivalPtr: 0x55ce2b6f42a0n, overrun: 0,
      isec: 1n, insec: 0n, vsec: 0n, vnsec: 999999n, notifyThreadId: 0,
    })] },
    'signal-shared': { arg: 812, content: [create(SiginfoEntrySchema, { siginfo: siginfo() })] },
    'signal-private': { arg: 813, content: [create(SiginfoEntrySchema, { siginfo: siginfo() })] },
  };
}
