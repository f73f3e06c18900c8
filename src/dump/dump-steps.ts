// The steps of `stasis dump` (dump.ts runs them in order), each writing its images through
// the run's `note`, which keeps the list of files a failed dump removes.
import { sessionRefusal } from '../restore/session-plan.js';
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { GadgetCache, GADGETS_FILE, type KernelFeatures, type InjectorOptions } from '../sys/index.js';
import { sharedFdTables } from './fd-tables.js';
import { writeImage, imagePath } from '../image/index.js';
import { PstreeEntrySchema } from '../image/gen/stasis/pstree_pb.js';
import { CoreEntrySchema, CoreEntry_March, type TaskKobjIdsEntry } from '../image/gen/stasis/core_pb.js';
import { writePagemapImage } from '../image/pagemap-writer.js';
import {
  FileIds, TtySink, newPipeDataSink, writePipeData, GhostDumper, LockCollector, DEFAULT_GHOST_LIMIT, newUnixSkSink, checkUnixPeers, checkPipePeers,
  writeSkQueues, threadPidfdTrouble, type DumpFileCtx,
} from '../files/index.js';
import { PageDumper } from '../mem/dump-pages.js';
import { ShmemDumper } from '../mem/shmem-dump.js';
import { hasDumpablePages, VMA } from '../mem/vma.js';
import { parseStat, parseStatus } from '../proc/index.js';
import { credsOf } from './creds.js';
import { collectTask, type CollectedTask } from './collect-task.js';
import { seccompImage } from './seccomp.js';
import { dumpFds, type DumpedFds } from './dump-fds.js';
import { resolveSocketMaps } from './socket-maps.js';
import { criuFileOrder, externEntries, iconOf, translateOwners, ghostOwners, ttyOwners, unixOwners } from '../files/index.js';
import { KobjIds } from './kobj-ids.js';
import type { TreeTask } from './freeze-tree.js';
import type { Incremental } from './incremental.js';
import type { Log } from '../log.js';
import type { TreeMounts } from '../files/kind.js';
import { createImageFile } from '../image/image-modes.js';
import { NetworkLock, nftTableName } from '../net/network-lock.js';
import { TcpDump, type TcpDumpOptions } from '../net/tcp-state.js';
import { SAME_PIDS, SAME_IDS, type PidView, type IdView } from '../ns/index.js';
import type { CredsEntry } from '../image/gen/stasis/creds_pb.js';
import { StasisError } from '../errors.js';
import type { FileSum } from '../image/image-sums.js';

/** What every step of one dump shares: where images go, and the objects named across tasks. */
export interface DumpRun {
  imagesDir: string;
  log: Log;
  /** Records an image file as written (a failed dump removes them); returns its path. */
  note: (file: string) => string;
  progress: (phase: string, done?: number, total?: number) => void;
  ids: FileIds;
  /** Kernel object ids: inventory's root_ids and each task's ids-PID.img. */
  kobj: KobjIds;
  pipeData: DumpFileCtx['pipeData'];
  unix: DumpFileCtx['unix'];
  /** Shared memory objects are named as fds and VMAs are seen (a memfd has both). */
  shmem: ShmemDumper;
  ghosts: GhostDumper;
  locks: LockCollector;
  /** Terminals: a pty pair's bytes are taken from it, and put back if the tree lives on. */
  ttys: TtySink;
  /** How syscalls are injected into the tree's tasks: the gadgets found so far, the log. */
  inject: InjectorOptions;
  /** TCP connections: options, network lock, sockets in repair mode, streams. */
  tcp: TcpDump;
  /** The pids images hold, those of the tree's pid namespace: stasis's own unless it has one. */
  pids: PidView;
  /** The uids and gids images hold, those of the tree's user namespace: stasis's own unless it has one. */
  users: IdView;
  /** A tree with a mount namespace of its own: its mounts' ids. */
  mnt?: TreeMounts | undefined;
  /** Sums of files summed as they were written (pages files), for stasis-sums.json. */
  sums: Map<string, FileSum>;
}

/** Injector options that log each injected syscall at debug level (-v4) and share the gadgets found, with later runs too. */
export function injectOptions(log: Log): InjectorOptions {
  return {
    gadgets: new GadgetCache(GADGETS_FILE),
    ...(log.level >= 4 ? { log: (m: string) => log.debug(`inject ${m}`) } : {}),
    warn: (m: string) => log.warn(m),
  };
}

export function newRun(
  imagesDir: string, kernel: KernelFeatures, ghostOpts: { ghostLimit?: number | undefined; linkRemap?: boolean | undefined },
  progress: DumpRun['progress'], log: Log, tcp: TcpDumpOptions & { rootPid: number }, inject: InjectorOptions = injectOptions(log),
): DumpRun & { written: string[] } {
  const written: string[] = [];
  const ids = new FileIds();
  return {
    imagesDir, progress, written, ids, log, kobj: new KobjIds(),
    note: (f) => {
      written.push(f);
      log.debug(`wrote ${f}`);
      return f;
    },
    pipeData: newPipeDataSink(),
    unix: newUnixSkSink(),
    shmem: new ShmemDumper(kernel.zeroPfn, () => ids.fresh()),
    ghosts: new GhostDumper(ghostOpts.ghostLimit ?? DEFAULT_GHOST_LIMIT, ghostOpts.linkRemap ?? false),
    locks: new LockCollector(),
    ttys: new TtySink(),
    inject,
    tcp: new TcpDump(tcp, new NetworkLock(tcp.lock, nftTableName(tcp.rootPid), log), log),
    pids: SAME_PIDS,
    users: SAME_IDS,
    sums: new Map(),
  };
}

export interface LiveTask {
  t: TreeTask;
  task: CollectedTask;
  fds: DumpedFds;
  /** The task's number from 1: its pages-N.img (its fdinfo image is named by kobj.filesId). */
  n: number;
  kobj: TaskKobjIdsEntry;
}

/** Everything about every live task: registers, memory layout, fds (the tree is frozen). */
export function collectTasks(run: DumpRun, tree: TreeTask[], shellJob: boolean): LiveTask[] {
  const tables = sharedFdTables(tree);
  const filesIds = new Map<number, number>();
  // What a pidfd may refer to: a task of the tree (zombies too) or one of its threads.
  const inTree = new Set(tree.flatMap((t) => [t.pid, ...(t.frozen?.tids ?? [])]));
  const treePid = (host: number) => (inTree.has(host) ? run.pids.pid(host) : undefined);
  const live = tree.filter((t) => t.frozen).map((t, i) => {
    run.log.info(`collecting pid ${t.pid} (threads ${t.frozen!.tids.join(', ')})`);
    const task = collectTask(t.pid, t.frozen!.tids, run.ids, run.ghosts, run.inject, t.frozen!);
    run.log.info(`pid ${t.pid}: ${task.vmas.length} memory areas, ${task.cores.length} thread(s)`);
    // An fd table shared with an earlier task is that task's: dumped once, under its number.
    const sharer = tables.get(t.pid);
    if (sharer !== undefined) run.log.info(`pid ${t.pid} shares the fd table of pid ${sharer}`);
    const fds = sharer !== undefined ? { fdinfos: [], files: [] } : dumpFds({
      pid: t.pid, imagesDir: run.imagesDir, log: run.log, shellJob, ids: run.ids, pipeData: run.pipeData, ghosts: run.ghosts, locks: run.locks,
      memfds: run.shmem, unix: run.unix, nsIdOf: (link) => run.kobj.nsIdOf(link), ttys: run.ttys, tcp: run.tcp, treePid, mnt: run.mnt,
    });
    resolveSocketMaps(task, run.ids);
    // One set of kernel objects per task, but an fd table shared with an earlier task is its.
    const kobj = run.kobj.task(t.pid, i);
    if (sharer !== undefined) kobj.filesId = filesIds.get(sharer)!;
    filesIds.set(t.pid, kobj.filesId);
    return { t, task, fds, n: i + 1, kobj };
  });
  // Only once every task is collected: a socket's peer may be in a later task, a pty's master too.
  checkUnixPeers(run.unix);
  checkPipePeers(run.pipeData, run.log);
  // A terminal's session and foreground group, in a pid namespace of the tree's own, as its tasks number them.
  const inner = new Map(live.flatMap((l) => {
    const ids = run.pids.pgidSid(l.t.pid);
    return ids ? [[l.task.stat.session, ids.sid], [l.task.stat.pgrp, ids.pgid]] as const : [];
  }));
  run.ttys.finish(live.map((l) => ({ pid: l.t.pid, sid: l.task.stat.session, pgid: l.task.stat.pgrp })), shellJob, (p) => inner.get(p) ?? p);
  if (run.unix.ownNetns) refuseZombiePairMakers(live, new Set(tree.filter((t) => !t.frozen).map((t) => t.pid)));
  if (run.pids !== SAME_PIDS) refuseHostPids(live, run, treePid);
  const holders = live.map((l) => ({ pid: run.pids.pid(l.t.pid), tids: l.t.frozen!.tids.map((tid) => run.pids.pid(tid)), fdinfos: l.fds.fdinfos }));
  const trouble = threadPidfdTrouble(holders, new Map(live.flatMap((l) => l.fds.files.map((f) => [f.id, f] as const))));
  if (trouble) throw new StasisError('E_UNSUPPORTED', `Cannot dump the tree of pid ${live[0]?.t.pid}: ${trouble}`);
  refuseMappedGhosts(run, live);
  return live;
}

/**
 * An fd of shared anonymous memory (opened through /proc/PID/map_files) is kept as a ghost:
 * a copy, which is no longer the memory a mapping of it shares, so a tree that maps it too
 * is refused.
 */
function refuseMappedGhosts(run: DumpRun, live: LiveTask[]): void {
  for (const l of live) {
    for (const v of l.task.vmas) {
      if (!(v.status & VMA.ANON_SHARED) || v.status & VMA.SYSVIPC) continue;
      const st = fs.statSync(`/proc/${l.t.pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`, { bigint: true });
      if (run.ghosts.holds(st.dev, st.ino)) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${l.t.pid}: the shared memory at 0x${v.start.toString(16)}-0x${v.end.toString(16)} is also open as a file (through /proc/PID/map_files), which stasis cannot restore as that same memory yet`);
      }
    }
  }
}

export interface MemoryStats {
  pagesScanned: number;
  pagesWritten: number;
  pagesSkippedParent: number;
}

/** Every task's private pages, then the tree's shared memory once per object (its pages ids follow). */
export function dumpMemory(run: DumpRun, live: LiveTask[], kernel: KernelFeatures, inc: Incremental, buffer: Buffer): MemoryStats {
  const toScan = live.reduce((n, l) => n + l.task.vmas.filter(hasDumpablePages).reduce((m, v) => m + Number((v.end - v.start) / 4096n), 0), 0);
  const stats = { pagesScanned: 0, pagesWritten: 0, pagesSkippedParent: 0 };
  let written = 0;
  for (const l of live) {
    const file = run.note(imagePath(run.imagesDir, 'pages', l.n));
    const out = createImageFile(file);
    const before = stats.pagesScanned;
    const pages = new PageDumper(l.t.pid, out, kernel.zeroPfn, {
      ...inc.forTask(l.t.pid, l.task.vmas, run.pids.pid(l.t.pid)), pagemapScan: kernel.pagemapScan, buffer, inject: run.inject, onScanned: (n) => run.progress('memory', before + n, toScan),
      onFlushed: (n) => run.progress('writing memory', (written += n) >> 12, 0),
    });
    try {
      pages.dumpVmas(l.task.vmas);
    } finally {
      pages.close();
      fs.closeSync(out);
    }
    run.sums.set(file, pages.sum);
    stats.pagesScanned += pages.stats.pagesScanned;
    stats.pagesWritten += pages.stats.pagesWritten;
    stats.pagesSkippedParent += pages.stats.pagesSkippedParent;
    run.note(writePagemapImage(run.imagesDir, run.pids.pid(l.t.pid), l.n, pages.entries));
  }
  for (const l of live) run.shmem.add(l.t.pid, l.task.vmas, l.task.mm.vmas);
  run.shmem.dump(run.imagesDir, live.length + 1, run.note, inc.parentDir);
  return stats;
}

/** The file objects, once each, before the per-task fd images that name them; then their contents. */
export function writeFileImages(run: DumpRun, live: LiveTask[]): void {
  const { imagesDir, note, shmem, ghosts, locks } = run;
  // The owners of what restore makes again, as the tree's user namespace sees them.
  if (run.users !== SAME_IDS) {
    translateOwners(run.users, [
      ...ghostOwners(ghosts.ghosts.map((g) => ({ id: g.id, head: g.image.head }))),
      ...shmem.memfdInodes.map((m) => ({ owned: m, what: `memfd ${m.name}` })),
      ...ttyOwners(run.ttys.infos),
      ...unixOwners([...run.unix.seen.values()].map((s) => s.entry)),
    ], 'E_UNSUPPORTED');
  }
  const holder = new Map<number, number>();
  for (const l of live) for (const e of l.fds.fdinfos) holder.set(e.id, Math.min(holder.get(e.id) ?? l.t.pid, l.t.pid));
  const files = [...live.flatMap((l) => [...l.task.files, ...l.fds.files]), ...shmem.files, ...externEntries(run.unix, () => run.ids.fresh())];
  note(writeImage(imagesDir, 'files', undefined, criuFileOrder(files, holder, (ino) => iconOf(run.unix, ino)?.index)));
  if (shmem.memfdInodes.length) note(writeImage(imagesDir, 'memfd-inode', undefined, shmem.memfdInodes));
  for (const g of ghosts.ghosts) note(writeImage(imagesDir, 'ghost-file', g.id, g.image));
  if (ghosts.remaps.length) note(writeImage(imagesDir, 'remap-fpath', undefined, ghosts.remaps));
  // The holder by the pid it has in its own namespace, as pstree.img names it.
  if (locks.entries.length) note(writeImage(imagesDir, 'file-locks', undefined, locks.entries.map((e) => ({ ...e, pid: run.pids.pid(e.pid) }))));
  if (run.ttys.infos.length) note(writeImage(imagesDir, 'tty-info', undefined, run.ttys.infos));
  if (run.ttys.data.length) note(writeImage(imagesDir, 'tty-data', undefined, run.ttys.data));
  for (const f of writePipeData(imagesDir, run.pipeData)) note(f);
  for (const f of writeSkQueues(imagesDir, run.unix)) note(f);
  for (const [ino, stream] of run.tcp.streams) note(writeImage(imagesDir, 'tcp-stream', ino, [stream]));
}

/** Per task: fds, fs, mm, a core per thread, kernel object ids. */
export function writeTaskImages(run: DumpRun, live: LiveTask[]): void {
  const { imagesDir, note } = run;
  // Before the cores: it sets their seccomp_filter indices.
  const seccomp = seccompImage(live.map((l) => l.task));
  if (seccomp) note(writeImage(imagesDir, 'seccomp', undefined, [seccomp]));
  const tables = new Set<number>();
  for (const l of live) {
    const p = run.pids.pid(l.t.pid);
    // A shared fd table is written once, by the first of its tasks.
    if (!tables.has(l.kobj.filesId)) note(writeImage(imagesDir, 'fdinfo', l.kobj.filesId, l.fds.fdinfos));
    tables.add(l.kobj.filesId);
    note(writeImage(imagesDir, 'fs', p, [{ $typeName: 'stasis.image.FsEntry', cwdId: l.task.cwdId, rootId: l.task.rootId, umask: l.task.umask }]));
    note(writeImage(imagesDir, 'mm', p, [l.task.mm]));
    // A timer that signals one thread names it as the task sees it (its own pid namespace's tid).
    for (const t of l.task.cores[0]?.core.tc?.timers?.posix ?? []) if (t.notifyThreadId) t.notifyThreadId = run.pids.pid(t.notifyThreadId);
    for (const c of l.task.cores) {
      const creds = c.core.threadCore?.creds;
      if (creds && run.users !== SAME_IDS) innerCreds(creds, run.users, p, c.tid);
      note(writeImage(imagesDir, 'core', run.pids.pid(c.tid), [c.core]));
    }
    note(writeImage(imagesDir, 'ids', p, [l.kobj]));
  }
}

/** A thread's ids as it sees them in its user namespace (CRIU's parasite reads them there). */
function innerCreds(c: CredsEntry, v: IdView, pid: number, tid: number): void {
  try {
    for (const k of ['uid', 'euid', 'suid', 'fsuid'] as const) c[k] = v.uid(c[k]);
    for (const k of ['gid', 'egid', 'sgid', 'fsgid'] as const) c[k] = v.gid(c[k]);
    c.groups = c.groups.map((g) => v.gid(g));
  } catch (err) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid} of pid ${pid}: its ${(err as Error).message}`);
  }
}

const TASK_DEAD = 2;

/** The tree, parents before children; a zombie gets a core with only its exit status. */
export function writePstree(run: DumpRun, tree: TreeTask[], live: LiveTask[]): void {
  const v = run.pids;
  // The root's parent is outside the tree: 0, in any namespace.
  const ppid = (t: TreeTask) => (t.ppid ? v.pid(t.ppid) : 0);
  const pstree = tree.map((t) => {
    const l = live.find((x) => x.t === t);
    if (l) {
      const inner = v.pgidSid(t.pid) ?? { pgid: l.task.stat.pgrp, sid: l.task.stat.session };
      return create(PstreeEntrySchema, { pid: v.pid(t.pid), ppid: ppid(t), ...inner, threads: t.frozen!.tids.map((x) => v.pid(x)) });
    }
    // A zombie: its group and session from /proc (still readable), its status in its core,
    // and its credentials, which its parent's waitid() (si_uid) and /proc still show.
    const st = parseStat(fs.readFileSync(`/proc/${t.pid}/stat`, 'utf8'));
    const creds = credsOf(parseStatus(fs.readFileSync(`/proc/${t.pid}/status`, 'utf8')), 0);
    if (run.users !== SAME_IDS) innerCreds(creds, run.users, v.pid(t.pid), v.pid(t.pid));
    run.note(writeImage(run.imagesDir, 'core', v.pid(t.pid), [create(CoreEntrySchema, {
      mtype: CoreEntry_March.X86_64,
      tc: { taskState: TASK_DEAD, exitCode: t.zombieStatus ?? 0, personality: 0, flags: 0, blkSigset: 0n, comm: 'zombie' },
      threadCore: { futexRla: 0n, futexRlaLen: 0, creds },
    })]));
    // One thread, as CRIU lists it: CRIU's restore counts a zombie's threads among those that
    // report at each stage, and with none the stages end one task early.
    return create(PstreeEntrySchema, { pid: v.pid(t.pid), ppid: ppid(t), ...(v.pgidSid(t.pid) ?? { pgid: st.pgrp, sid: st.session }), threads: [v.pid(t.pid)] });
  });
  // A task is born in its session: one whose session no task can clone it into is refused.
  const sessions = sessionRefusal(pstree);
  if (sessions) throw new StasisError('E_UNSUPPORTED', `Cannot dump the tree's sessions: ${sessions}`);
  run.note(writeImage(run.imagesDir, 'pstree', undefined, pstree));
}

/**
 * In a pid namespace of its own, what names a pid stasis records only as its own namespace
 * sees it: refused, not restored with the wrong number. A socket pair's SO_PEERCRED names the
 * task that made it: with a network namespace of the tree's own too, restore has that task
 * (by its pid in the tree) make the pair again, once the tree is made; otherwise refused.
 */
function refuseHostPids(live: LiveTask[], run: DumpRun, treePid: (host: number) => number | undefined): void {
  for (const l of live) {
    for (const f of l.fds.files) {
      const inTree = f.usk?.peerCred && run.unix.ownNetns ? treePid(f.usk.peerCred.pid) : undefined;
      if (inTree !== undefined) f.usk!.peerCred!.pid = inTree;
      else if (f.usk?.peerCred) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump Unix socket ${f.usk.ino} of pid ${l.t.pid}: its SO_PEERCRED names pid ${f.usk.peerCred.pid}, which stasis cannot make again inside a pid namespace of the tree's own yet`);
      }
    }
  }
}

/**
 * In a network namespace of the tree's own a socket pair is made again by the task its
 * SO_PEERCRED names, once the tree is made: a zombie by then cannot (it has exited).
 */
function refuseZombiePairMakers(live: LiveTask[], zombies: Set<number>): void {
  for (const l of live) {
    for (const f of l.fds.files) {
      const pid = f.usk?.peerCred?.pid;
      if (pid !== undefined && zombies.has(pid)) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump Unix socket ${f.usk!.ino} of pid ${l.t.pid}: its SO_PEERCRED names pid ${pid}, a zombie, which cannot make the pair again in the tree's network namespace`);
      }
    }
  }
}

