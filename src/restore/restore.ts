// `stasis restore`: read and check every image, open the file objects once, build the tree
// of stub tasks with their pids, turn each into its task, let them all go. A failure at any
// point kills what was created, so a failed restore leaves no process behind.
import fs from 'node:fs';
import { kill, waitPid, probeTimerRestoreIds } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { NO_LOG, type Log } from '../log.js';
import { readImageSet, verifyImageSet } from './read-images.js';
import { SumCheck } from '../image/sum-check.js';
import { SumsAlongside } from '../image/image-sums.js';
import { OpenFiles } from './open-files.js';
import { checkThreadPidfds, threadLeaders } from './thread-pidfds.js';
import { MappedFiles, remappedMaps, isFileVma } from './mapped-files.js';
import { vmaSpecs } from './cow-premap.js';
import { formatVersionOf } from '../dump/format.js';
import { type RestoreFileCtx, InheritedFds, readExternalPipes, readPipeData, readUnixSkState, refuseUnorderedPending, TtyRestoreState, kindOfType, GhostRestorer, DeadPids, translateOwners, ttyOwners, unixOwners } from '../files/index.js';
import { createTree, createRoot } from './create-tree.js';
import { FdCourier } from './fd-courier.js';
import { NestedMounts } from './nested-mounts.js';
import { NestedNets } from './nested-nets.js';
import { createRootTask, type NewTask } from './create-task.js';
import { FdTypes, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { restoreTask } from './restore-task.js';
import { releaseTasks } from './release-tasks.js';
import { ShmemObjects } from './shmem-objects.js';
import { SocketPairs, type Cred } from './socket-pairs.js';
import { readLocks } from './restore-locks.js';
import { TcpRestore } from '../net/tcp-state.js';
import { ownNamespaces, restoreFlags, restoreNamespaces, restoreNestedNets, rootTimeOffsets, restoreUsers, SAME_IDS } from '../ns/index.js';
import { Injector, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWPID, CLONE_NEWUSER } from '../sys/index.js';
import type { ExitStatus, RestoreOptions, RestoreResult } from '../api/types.js';
import { CgroupRestore } from '../cgroup/restore-cgroups.js';
import { LazyFiller, lazyPagesUnavailable, type LazyTask } from '../mem/lazy-pages.js';
import { sleepSync } from '../sys/sleep.js';

export function waitExit(pid: number): ExitStatus {
  for (;;) {
    const w = waitPid(pid);
    if (!w) continue;
    if (w.kind === 'exited') return { kind: 'exited', code: w.code };
    if (w.kind === 'signaled') return { kind: 'signaled', signal: w.signal };
  }
}

const PROC_PID = /^\/proc\/(\d+)(\/|$)/;
const TASK_STOPPED = 3, SIGSTOP = 19;

/**
 * SIGTSTP, SIGTTIN and SIGTTOU are dropped by the kernel in an orphaned process group: a task
 * they do not stop is stopped with SIGSTOP (its waitid() then says SIGSTOP), and it is said.
 */
function ensureStopped(pid: number, signo: number, log: Log): void {
  if (signo === SIGSTOP) return;
  const until = Date.now() + 1000;
  for (;;) {
    let state = '';
    try {
      state = /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
    } catch {
      return;
    }
    if (state === 'T') return;
    if (Date.now() > until) break;
    sleepSync(1);
  }
  log.warn(`pid ${pid} was not stopped by signal ${signo} (its process group is orphaned now): stopped with SIGSTOP`);
  kill(pid, SIGSTOP);
}

/** The sockets (and tun files) of a network namespace of the tree's own, made in it once its root exists. */
const NETNS_SOCKETS = new Set([FdTypes.INETSK, FdTypes.UNIXSK, FdTypes.NETLINKSK, FdTypes.PACKETSK, FdTypes.TUNF]);

/**
 * Splits files into those opened before the tree is made, and those opened once it exists:
 * files under /proc/PID of one of its pids, and pidfds (of its tasks, or of stand-ins for
 * dead processes, whose pids must not take one the tree needs).
 */
function byProcPid(entries: FileEntry[], pids: Set<number>, ownNetns: boolean): [FileEntry[], FileEntry[]] {
  const late = (e: FileEntry) => {
    if (e.type === FdTypes.PIDFD || (ownNetns && NETNS_SOCKETS.has(e.type))) return true;
    const m = e.reg ? PROC_PID.exec(e.reg.name) : null;
    return m !== null && pids.has(Number(m[1]));
  };
  return [entries.filter((e) => !late(e)), entries.filter(late)];
}

/**
 * A process with a dead pid, for the time files of its /proc/PID are opened (CRIU's PROCFS
 * remap); in a pid namespace of the tree's own (`pidNsOf`: a task in it), that pid in it.
 */
function holdPid(pid: number, pidNsOf?: number): () => void {
  const t = createRootTask(pid, 0, pidNsOf === undefined ? [] : [{ file: `/proc/${pidNsOf}/ns/pid`, flag: CLONE_NEWPID }]);
  return () => {
    kill(t.pid, 9);
    waitExit(t.pid);
  };
}

/** Kills every task a restore created, children first (a parent killed first would hand them to init before they are reaped); only those: the root's pid may be someone else's. */
function killCreated(created: Map<number, NewTask>): void {
  for (const pid of [...created.keys()].reverse()) {
    try {
      kill(pid, 9);
      waitExit(pid);
    } catch {
      /* gone, or reaped already */
    }
  }
}

export function restore(opts: RestoreOptions): RestoreResult {
  const t0 = performance.now();
  if (opts.lazyPages) {
    const why = lazyPagesUnavailable();
    if (why) throw new StasisError('E_UNSUPPORTED', `Cannot restore with --lazy-pages on this kernel: ${why}`);
  }
  // Started first: its start-up (loading its modules) goes on while the images are checked and read.
  const filler = opts.lazyPages ? LazyFiller.take() : null;
  try {
    return restoreWith(opts, filler, t0);
  } catch (err) {
    filler?.abort();
    throw err;
  } finally {
    if (filler) LazyFiller.prepareNext();
  }
}

function restoreWith(opts: RestoreOptions, filler: LazyFiller | null, t0: number): RestoreResult {
  const progress = (phase: string, done = 0, total = 0) => opts.onProgress?.({ phase, done, total });
  const log = opts.log ?? NO_LOG;
  const notify = opts.notify ?? (() => {});
  notify('pre-restore');
  log.info(`restoring from ${opts.imagesDir}`);
  if (opts.noVerify) log.warn('checksums not verified (--no-verify)');
  if (filler) log.info(`lazy page filler thread ${filler.loaded ? 'loaded already (started ahead)' : 'loading'}`);
  let pageSums: SumCheck | undefined;
  let alongside: SumsAlongside | undefined;
  if (!opts.noVerify) {
    progress('verifying images');
    // Big pages files are summed on another thread while the tree is built (their bytes are
    // only copied, never parsed); the tree runs only once they check out.
    // With --lazy-pages, the filler checks each MiB of a pages file with sums per chunk
    // (version 3) before it puts a byte of it in a task: the tree runs at once, and runs on
    // nothing unchecked. Other pages files are checked before it runs.
    // The smaller ones are summed by restore's own thread while the tasks read their pages (SumsAlongside).
    const v = verifyImageSet(opts.imagesDir, (name) => PAGES_FILE.test(name));
    const byFiller = filler ? v.deferred.filter((d) => d.chunks !== undefined) : [];
    const meanwhile = v.deferred.filter((d) => !byFiller.includes(d) && d.size >= DEFER_SUM_BYTES);
    const along = v.deferred.filter((d) => !byFiller.includes(d) && !meanwhile.includes(d));
    if (byFiller.length) filler!.checkChunks(byFiller.map((d) => ({ file: d.file, size: d.size, chunks: d.chunks! })));
    if (meanwhile.length) pageSums = new SumCheck(meanwhile);
    if (along.length) alongside = new SumsAlongside(along);
    log.info(`checksums verified: ${v.files - v.deferred.length} file(s) in ${v.dirs} image set(s)${meanwhile.length ? `, ${meanwhile.length} pages file(s) being checked meanwhile` : ''}${along.length ? `, ${along.length} checked while the tasks read their pages` : ''}${byFiller.length ? `, ${byFiller.length} checked by the lazy filler as it reads them` : ''}`);
  }
  try {
    return restoreChecked(opts, filler, t0, progress, log, notify, pageSums, alongside);
  } finally {
    pageSums?.cancel();
    alongside?.close();
  }
}

/** The pages files whose sums restore checks while it builds the tree, and from what size. */
const PAGES_FILE = /^pages-\d+\.img$/;
const DEFER_SUM_BYTES = 32 << 20;

function restoreChecked(
  opts: RestoreOptions, filler: LazyFiller | null, t0: number, progress: (phase: string, done?: number, total?: number) => void, log: Log,
  notify: NonNullable<RestoreOptions['notify']>, pageSums: SumCheck | undefined, alongside: SumsAlongside | undefined,
): RestoreResult {
  progress('reading images');
  // Before anything exists: an fd that is not open fails the restore (CRIU's inherit_fd_add).
  const inherit = InheritedFds.from(opts.inheritFds ?? []);
  const set = readImageSet(opts.imagesDir);
  for (const key of readExternalPipes(set.dir)) {
    if (!inherit.has(key)) throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${key}: its other end was outside the tree, and the dump took it as external; give the tree a pipe for it with --inherit-fd fd[N]:${key} (over RPC, inherit_fd)`);
  }
  log.info(`images read: ${set.order.length} task(s), ${set.files.size} file object(s)`);
  const locks = readLocks(set.dir);
  checkThreadPidfds(set);
  const root = set.order[0]!.pid;
  // The root's namespaces of its own: refused now if stasis cannot make them, before anything exists.
  const rootTask = set.tasks.find((t) => t.pstree.pid === root);
  const joined = new Set((opts.joinNs ?? []).map((j) => j.ns));
  const nsKinds = rootTask ? ownNamespaces(set.inventory.rootIds, rootTask.ids).filter((k) => !joined.has(k.name as 'net')) : [];
  const nsFlags = restoreFlags(nsKinds);
  const JOIN_FLAGS = { net: CLONE_NEWNET, ipc: CLONE_NEWIPC, uts: CLONE_NEWUTS } as const;
  // An empty network namespace is left for the engine to set up (its setup-namespaces hook).
  const users = rootTask ? restoreUsers(set.dir, nsKinds, rootTask.ids) : undefined;
  // A mount namespace of its own: the root and its mounts are made first, and the files are
  // opened in them, through the root's /proc/PID/root (those of a nested one through its helper's).
  const ownMnt = nsKinds.some((k) => k.name === 'mnt');
  const nested = new NestedMounts(set);
  if (nested.ids.length && !ownMnt) throw new StasisError('E_UNSUPPORTED', `Cannot restore the tree: its tasks are in mount namespaces ${nested.ids.join(', ')} apart from the root's, and the root shares stasis's`);
  // Network namespaces other than the root's own: made by holders the root clones, filled after its own.
  const nets = new NestedNets(set);
  if (nets.ids.length && (!nsKinds.some((k) => k.flag === CLONE_NEWNET) || (opts.emptyNs ?? 0) & CLONE_NEWNET)) throw new StasisError('E_UNSUPPORTED', `Cannot restore the tree: its tasks are in net namespaces ${nets.ids.join(', ')} apart from the root's, and the root's is not one of its own to restore`);
  // The mounts are made by the root itself (its code runs their syscalls).
  const fillNamespaces = (hostPid: number, rootCode?: bigint, rootTaskMade?: NewTask) => restoreNamespaces({
    imagesDir: set.dir, log, ...(users ? { users } : {}), root: opts.root, extMounts: opts.extMounts, extAuto: opts.extAuto, extDevs: opts.extDevs, netExternals: opts.netExternals, ...(rootCode !== undefined ? { rootCode } : {}),
    makePty: (index: number, ptmx: string) => fileCtxTtys.makeEarly(index, ptmx),
    ...(nested.ids.length && rootTaskMade ? { nestedMnt: nested.restoreCtx(rootTaskMade, nets.pids) } : {}),
    ...(nets.ids.length ? { nets: nets.made() } : {}),
  }, nsKinds.filter((k) => !(k.flag & (opts.emptyNs ?? 0))), rootTask!.ids, hostPid);
  // The holders of the other network namespaces first (a veth between two is made with an end in each), then the root's, then theirs.
  const onRoot = (t: NewTask) => {
    if (nets.ids.length) {
      const inj = new Injector(t.pid, { code: t.code, codeInPlace: true });
      try {
        nets.make(t, inj);
      } finally {
        inj.end();
      }
    }
    fillNamespaces(t.pid, t.code, t);
    if (nets.ids.length) restoreNestedNets({ imagesDir: set.dir, log, netExternals: opts.netExternals, nets: nets.made(), ...(users ? { users } : {}) }, nets.each());
  };
  // Under a user namespace of its own but in stasis's pid namespace, the tree's namespaces are
  // made by a holder in it, and the tasks enter it one by one as they are restored
  // (restore-task.ts). With a pid namespace of its own, the root is born in them all (its init
  // must be), and its tasks get stasis's files through a courier socket (fd-courier.ts).
  let userNsFd: number | undefined;
  const enterLate = (nsFlags & CLONE_NEWUSER) !== 0 && !(nsFlags & CLONE_NEWPID);
  if (enterLate && nets.ids.length) throw new StasisError('E_UNSUPPORTED', `Cannot restore the tree: its tasks are in net namespaces ${nets.ids.join(', ')} apart from the root's, under a user namespace of its own without a pid namespace, which stasis cannot restore yet`);
  const courier = nsFlags & CLONE_NEWUSER && nsFlags & CLONE_NEWPID ? FdCourier.create() : undefined;
  const rootNs = {
    flags: nsFlags, join: (opts.joinNs ?? []).map((j) => ({ file: j.file, flag: JOIN_FLAGS[j.ns] })),
    timeOffsets: () => rootTimeOffsets({ imagesDir: set.dir, log }, nsKinds, rootTask!.ids),
    ...(enterLate ? { holder: { flags: nsFlags, fill: (hostPid: number) => fillNamespaces(hostPid), keep: (fd: number) => (userNsFd = fd) } } : { onRoot }),
    ...(courier ? { courier } : {}),
    ...(users && users !== SAME_IDS ? { users } : {}),
    ...(opts.sibling ? { sibling: true } : {}),
    ...(nested.ids.length ? { enterMnt: (pid: number) => nested.enterOf(pid, created.get(root)!) } : {}),
    ...(nets.ids.length ? { enterNet: (pid: number) => nets.enterOf(pid, created.get(root)!) } : {}),
  };
  if (nsKinds.length) log.info(`the root gets namespaces of its own: ${nsKinds.map((k) => k.name).join(', ')}`);
  // Every task's fds, and its cwd and root (entered from stasis's open directories).
  const ids = new Set(set.tasks.flatMap((t) => [...t.fdinfos.map((d) => d.id), t.fs.cwdId, t.fs.rootId]));
  // And the files in flight in sockets' queues (SCM_RIGHTS), which no task holds.
  const unix = readUnixSkState(set.dir, opts.extUnixSk ?? false);
  if (formatVersionOf(set.inventory.dumpCriuRunId) === null) refuseUnorderedPending(set.files);
  for (const byPacket of unix.rights.values()) for (const f of [...byPacket.values()].flat()) ids.add(f);
  const tcp = TcpRestore.fromImages(set.files, set.inventory, root, { established: opts.tcpEstablished ?? false, close: opts.tcpClose ?? false }, log);
  // A network namespace of the tree's own is new: its inet sockets are made in it once the root exists (and its rules with it).
  const ownNetns = nsKinds.some((k) => k.flag === CLONE_NEWNET) && !((opts.emptyNs ?? 0) & CLONE_NEWNET);
  if (ownNetns) tcp.ownNetns();
  // Shared memory before the files: an open memfd is a file of a shared memory object.
  const fileCtxTtys = new TtyRestoreState(set.dir, set.files);
  // The owners of what stasis makes again, in its own view (the images hold the tree's user namespace's).
  if (users && users !== SAME_IDS) {
    translateOwners(users, [
      ...[...set.shmem.objects.values()].flatMap((o) => [{ owned: o.memfd, what: `memfd ${o.memfd?.name}` }, { owned: o.anon, what: `shared memory ${o.shmid}` }]),
      ...ttyOwners(fileCtxTtys.infos.values()),
      ...unixOwners([...set.files.values()].flatMap((f) => (f.usk ? [f.usk] : []))),
    ], 'E_RESTORE_FAILED');
  }
  progress('shared memory');
  let shmem: ShmemObjects;
  try {
    shmem = ShmemObjects.create(set.shmem);
  } catch (err) {
    tcp.abort();
    throw err;
  }
  progress('opening files');
  // Files under /proc/PID of a task of the tree are opened once the tree exists.
  const [early, late] = byProcPid([...ids].map((id) => set.files.get(id)!), new Set(set.order.map((e) => e.pid)), ownNetns);
  const created = new Map<number, NewTask>();
  const leaders = threadLeaders(set);
  const ownHoldPid = (pid: number) => holdPid(pid, nsFlags & CLONE_NEWPID ? created.get(root)?.pid : undefined);
  const fileCtx: RestoreFileCtx & { ghosts: GhostRestorer } = {
    log, imagesDir: set.dir, shellJob: opts.shellJob ?? false, files: set.files, regTwin: (id: number) => set.regTwins.get(id), pipes: readPipeData(set.dir), memfds: shmem,
    unix, holdPid: ownHoldPid, ttys: fileCtxTtys, tcp, inherit,
    socketPairAs: (type: number, cred: Cred) => pairs.make(type, cred), ghosts: new GhostRestorer(set.dir, ownHoldPid, users),
    taskPid: (pid: number) => created.get(pid)?.pid, ...(nested.ids.length ? { rootOf: (mntId: number) => nested.rootOf(mntId) } : {}), netnsOf: (id: number) => nets.pathOf(id), deadPids: new DeadPids(() => (nsFlags & CLONE_NEWPID ? created.get(root)?.pid : undefined)), threadLeader: (tid: number) => leaders.get(tid),
  };
  // The files mapped that are ghosts (or kept by a link) are opened with the others, while they exist.
  // With mount namespaces below the root's, every mapped file and exe too: a task's path may lead elsewhere in its namespace (a pivot_root).
  const crossNs = new Set(nested.ids.length ? set.tasks.flatMap((t) => [t.mm.exeFileId, ...vmaSpecs(t).filter(isFileVma).map((v) => Number(v.shmid))]) : []);
  const maps = remappedMaps(set.tasks.map(vmaSpecs), (id) => fileCtx.ghosts.remapOf(id) !== undefined || crossNs.has(id));
  if (nested.ids.length) maps.push(...[...new Set(set.tasks.map((t) => t.mm.exeFileId))].filter((id) => !maps.some((m) => m.id === id && m.mode === 0)).map((id) => ({ id, mode: 0 })));
  const pairs = new SocketPairs(log);
  let files: OpenFiles;
  try {
    if (ownMnt) fileCtx.ttys.root = fileCtx.root = fileCtx.ghosts.root = `/proc/${createRoot(set, created, rootNs).pid}/root`;
    if (nested.ids.length) fileCtx.ghosts.rootOf = (mntId: number) => nested.rootOf(mntId);
    files = OpenFiles.open(early, fileCtx, undefined, maps);
  } catch (err) {
    shmem.close();
    tcp.abort();
    nested.abort();
    nets.abort();
    for (const t of created.values()) {
      kill(t.pid, 9);
      waitExit(t.pid);
    }
    throw err;
  } finally {
    pairs.end(); // before the tree takes its pids
  }
  let cgroups: CgroupRestore | undefined;
  const lazyFiles: string[] = [];
  let runningMs = 0;
  try {
    // Before any task: a cgroup the mode forbids making stops the restore with nothing created.
    cgroups = CgroupRestore.prepare(set.dir, set.inventory.rootCgSet, opts.manageCgroups ?? 'soft', opts.cgroupRoots ?? [], log);
    const cg = cgroups;
    // CRIU 4.2 names a task's set in its thread core (threaded cgroups), stasis and older CRIUs in tc.
    const cgSetOf = new Map(set.tasks.map((t) => [t.pstree.pid, t.core.threadCore?.cgSet || t.core.tc?.cgSet]));
    if (opts.manageCgroups !== 'ignore') {
      for (const t of set.tasks) {
        const apart = t.threads.find((x) => x.core.threadCore?.cgSet && x.core.threadCore.cgSet !== cgSetOf.get(t.pstree.pid));
        if (apart) throw new StasisError('E_UNSUPPORTED', `Cannot restore thread ${apart.tid} of pid ${t.pstree.pid}: it was in cgroup set ${apart.core.threadCore!.cgSet}, its process in ${cgSetOf.get(t.pstree.pid)}; stasis cannot restore threaded cgroups`);
      }
    }
    progress('creating tasks');
    const mapped = new MappedFiles(set, files, (id) => fileCtx.ghosts.remapOf(id), (v) => shmem.fdFor(v));
    const cow = createTree(set, created, rootNs, mapped, (pid, hostPid) => cg.place(cgSetOf.get(pid), hostPid));
    if (ownNetns) tcp.lockNetns({ link: '', path: `/proc/${created.get(root)!.pid}/ns/net` });
    // The pairs of its own network namespace are made by the tree's tasks that made them, in it.
    if (ownNetns) pairs.treeTask = (pid) => created.get(pid);
    if (late.length) OpenFiles.open(late, fileCtx, files);
    nested.end(created.get(root)!);
    nets.end(created.get(root)!);
    inherit.logUnused(log);
    notify('setup-namespaces', created.get(root)!.pid);
    notify('post-setup-namespaces');
    const tids: number[] = [];
    const timerRestoreIds = set.tasks.some((t) => t.core.tc?.timers?.posix.length) && probeTimerRestoreIds();
    const inject = log.level >= 4 ? { log: (m: string) => log.debug(`inject ${m}`) } : {};
    // Epoll instances in flight (SCM_RIGHTS), by the socket whose queue holds them: the task holding it adds their targets.
    const epollsInFlight = new Map([...unix.rights].map(([sk, byPacket]) => [sk, [...byPacket.values()].flat().filter((f) => set.files.get(f)?.epfd)] as const).filter(([, e]) => e.length));
    const ctx = { set, files, shmem, locks, ...(users ? { users } : {}), ...(userNsFd !== undefined ? { userNsFd } : {}), epollsFilled: new Set<number>(), epollsInFlight, fdTablesDone: new Set<number>(), timerRestoreIds, ttys: fileCtx.ttys, inject, warn: (m: string) => log.warn(m), premapped: cow.premapped, mapped,
      ...(alongside ? { meanwhile: () => alongside.step() } : {}),
      ...(filler ? { lazy: { add: (t: LazyTask) => filler.add(t, lazyFiles), fileIndex: (p: string) => (lazyFiles.includes(p) ? lazyFiles.indexOf(p) : lazyFiles.push(p) - 1) } } : {}) };
    set.tasks.forEach((t, i) => {
      progress('restoring tasks', i, set.tasks.length);
      log.info(`restoring pid ${t.pstree.pid} (${t.threads.length + 1} thread(s), ${t.mm.vmas.length} memory areas, ${t.fdinfos.length} fds)`);
      for (const d of t.fdinfos) log.debug(`pid ${t.pstree.pid} fd ${d.fd}: file ${d.id} (${kindOfType(d.type)?.name ?? d.type})`);
      tids.push(...restoreTask(ctx, t, created.get(t.pstree.pid)!));
    });
    if (userNsFd !== undefined) fs.closeSync(userNsFd);
    userNsFd = undefined;
    courier?.close();
    if (alongside) {
      const left = alongside.pending, tw = performance.now();
      alongside.finish();
      log.info(`pages files' checksums verified alongside the reads (${left} file(s) left to sum after them, ${(performance.now() - tw).toFixed(1)} ms)`);
    }
    if (pageSums) {
      const tw = performance.now();
      pageSums.wait();
      log.info(`pages files' checksums verified (waited ${(performance.now() - tw).toFixed(1)} ms for them)`);
    }
    shmem.seal();
    notify('post-restore', created.get(root)!.pid);
    // Connections: unlocked and out of repair mode just before the tree runs.
    tcp.finish();
    notify('network-unlock');
    notify('pre-resume');
    // A task stopped by job control gets its stop signal while every thread is still traced:
    // each takes it on its way out of the last stop, before it runs an instruction of its own.
    const stopped = set.tasks.filter((t) => t.core.tc?.taskState === TASK_STOPPED);
    // (By its pid here: in a pid namespace of its own, the image's pid is not stasis's.)
    const realPid = (t: (typeof stopped)[number]) => created.get(t.pstree.pid)!.pid;
    for (const t of stopped) kill(realPid(t), t.core.tc!.stopSigno || SIGSTOP);
    // The filler has served the tasks' faults since each was armed; now it fills the rest.
    filler?.run();
    releaseTasks(tids, log);
    runningMs = performance.now() - t0;
    filler?.serveUntilLoaded();
    for (const t of stopped) ensureStopped(realPid(t), t.core.tc!.stopSigno || SIGSTOP, log);
    log.info(`tree restored and running: ${tids.join(', ')}${stopped.length ? ` (stopped: ${stopped.map(realPid).join(', ')})` : ''}`);
  } catch (err) {
    log.error(`restore failed, every task it made is killed: ${(err as Error).message}`);
    if (userNsFd !== undefined) fs.closeSync(userNsFd);
    courier?.close();
    tcp.abort();
    filler?.abort();
    nested.abort();
    nets.abort();
    killCreated(created);
    cgroups?.undo();
    // With --lazy-pages, a chunk of a pages file that failed its check made the filler kill the tree: that is the cause.
    const damaged = filler?.stoppedWith(500);
    if (damaged && / is damaged: /.test(damaged)) throw new StasisError('E_CORRUPT', damaged, { cause: err });
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore pid ${root}: ${(err as Error).message}`, { cause: err });
  } finally {
    shmem.close();
    files.close();
    cgroups?.close();
  }
  try {
    notify('post-resume');
  } catch (e) {
    log.warn(`post-resume failed, the tree runs on: ${(e as Error).message}`);
  }
  const restoredMs = performance.now() - t0;
  // As stasis's pid namespace sees them: in a pid namespace of their own, the tasks' own differ.
  const pids = set.order.map((e) => created.get(e.pid)?.pid ?? e.pid);
  const hostRoot = pids[0]!;
  opts.onRestored?.(hostRoot);
  // A sibling root is its caller's to wait for: stasis cannot (CRIU's wait() gets ECHILD there too).
  const noWait = opts.detach === true || opts.sibling === true;
  if (!filler) {
    if (noWait) return { pid: hostRoot, pids, totalMs: restoredMs };
    return { pid: hostRoot, pids, exit: waitExit(hostRoot), totalMs: restoredMs };
  }
  // --lazy-pages: the tree runs; this returns once its memory is all in (with -d), as
  // CRIU's restore returns only once its lazy-pages daemon has every page (a detached filler
  // would die with stasis and leave the tasks waiting on a page forever).
  filler.checkAhead();
  const exit = noWait ? undefined : waitExit(hostRoot);
  const failed = filler.waitDone();
  const fillMs = performance.now() - t0;
  const s = filler.stats();
  if (failed && / is damaged: /.test(failed)) {
    // A chunk of a pages file failed its check before any byte of it went in: the filler has
    // killed the tree (made sure of here), which ran on checked memory alone until then.
    log.error(`a pages file is damaged, the restored tree is killed: ${failed}`);
    killCreated(created);
    throw new StasisError('E_CORRUPT', failed);
  }
  if (failed) {
    if (exit) log.error(`the lazy page filler failed: ${failed}`);
    else throw new StasisError('E_RESTORE_FAILED', `Cannot fill the memory of the restored tree of pid ${root} (its tasks were killed): ${failed}`);
  }
  log.info(`lazy pages: running after ${runningMs.toFixed(1)} ms, memory full after ${fillMs.toFixed(1)} ms (${s.copied} pages copied, ${s.faults} faults, ${s.zero} zero pages, ${s.events} events; the filler thread loaded ${filler.waitedMs.toFixed(1)} ms after the tree ran, ${s.early} faults served before)`);
  const lazyStats = { runningMs, fillMs, ...s };
  return exit ? { pid: hostRoot, pids, exit, totalMs: restoredMs, lazy: lazyStats } : { pid: hostRoot, pids, totalMs: restoredMs, lazy: lazyStats };
}
