// `stasis dump`: the phases, top to bottom. Nothing is written until the task is frozen and
// everything about it has been read; the inventory and then the checksums go last, so an
// image set without them is known to be incomplete. Any failure thaws the task and removes what was written.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { kernelFeatures, CLONE_NEWNET } from '../sys/index.js';
import { writeImage } from '../image/index.js';
import { InventoryEntrySchema, Lsmtype } from '../image/gen/stasis/inventory_pb.js';
import { StatsEntrySchema } from '../image/gen/stasis/stats_pb.js';
import { PAGE_BUF_SIZE } from '../mem/dump-pages.js';
import { StasisError } from '../errors.js';
import { NO_LOG } from '../log.js';
import { thawTree, killTree } from './freeze-tree.js';
import { newRun, injectOptions, collectTasks, dumpMemory, writeFileImages, writeTaskImages, writePstree } from './dump-steps.js';
import { FORMAT_TAG } from './format.js';
import { LOCK_METHOD_CODES } from '../net/network-lock.js';
import { Incremental, freezeTracked } from './incremental.js';
import type { DumpOptions, DumpResult } from '../api/types.js';
import { makeImagesDir } from '../image/image-modes.js';
import { writeSums } from '../image/image-sums.js';
import { closeInFlight } from '../files/index.js';
import { checkTreeNamespaces, dumpNamespaces, SAME_IDS } from '../ns/index.js';
import { readMounts } from '../ns/mnt.js';
import { collectCgroups, refuseFrozenCgroups, OWN_CG_SET } from '../cgroup/dump-cgroups.js';

export function dump(opts: DumpOptions): DumpResult {
  const t0 = performance.now();
  const { pid, imagesDir } = opts;
  if (!Number.isInteger(pid) || pid <= 0) throw new StasisError('E_BAD_ARGS', `Invalid pid ${pid}`);
  if (!fs.existsSync(`/proc/${pid}`)) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
  // A task of a frozen cgroup would never stop for ptrace: refused before anything is touched.
  refuseFrozenCgroups(pid);
  makeImagesDir(imagesDir);
  const kernel = kernelFeatures();
  const progress = (phase: string, done = 0, total = 0) => opts.onProgress?.({ phase, done, total });
  const log = opts.log ?? NO_LOG;
  const inject = injectOptions(log);
  // Before the parent link is made: a run cancelled here leaves nothing.
  progress('freezing');
  const inc = Incremental.open({
    imagesDir, prevImagesDir: opts.prevImagesDir, track: opts.trackMem ?? false, backend: opts.trackBackend ?? 'auto', kernel, preDump: false, inject,
  });

  const ioBuf = Buffer.alloc(PAGE_BUF_SIZE); // zero-filled: faulted in now, not while the tree is frozen
  log.info(`dumping the tree of pid ${pid} into ${imagesDir}`);
  const lockMethod = opts.networkLock ?? 'iptables';
  const run = newRun(imagesDir, kernel, { ghostLimit: opts.ghostLimit, linkRemap: opts.linkRemap }, progress, log, {
    established: opts.tcpEstablished ?? false, close: opts.tcpClose ?? false, skipInFlight: opts.skipInFlight ?? false,
    lock: lockMethod, rootPid: pid,
  }, inject);
  run.unix.extUnixSk = opts.extUnixSk ?? false;
  run.pipeData.external = new Set(opts.externalPipes ?? []);
  if (opts.stdioPipesExternal) run.pipeData.stdioOf = pid;
  const notify = opts.notify ?? (() => {});
  notify('pre-dump');
  const tFreeze = performance.now();
  const tree = freezeTracked(pid, inc, opts.freezeCgroup !== undefined ? { dir: opts.freezeCgroup, log } : undefined);
  let locked = false;
  const tFrozen = performance.now();
  log.info(`froze ${tree.length} task(s) in ${(tFrozen - tFreeze).toFixed(1)} ms: ${tree.map((t) => t.frozen ? t.pid : `${t.pid} (zombie)`).join(', ')}`);
  try {
    // Before anything is written or locked: a namespace stasis cannot give back refuses the tree.
    const mounts = { hasRoot: opts.root !== undefined, extMounts: opts.extMounts ?? new Map<string, string>(), extAuto: opts.extAuto, extDevs: opts.extDevs, tmpfsSockets: run.unix.tmpfsSockets };
    const ns = checkTreeNamespaces(tree.map((t) => t.pid), opts.emptyNs ?? 0, mounts);
    run.pids = ns.pids;
    // Sockets of the tree's own network namespace are looked at and locked from within it.
    const netLink = ns.links.get('net');
    if (netLink && ns.own.some((k) => k.name === 'net') && !(ns.empty & CLONE_NEWNET)) {
      run.tcp.setNetns({ link: netLink, path: `/proc/${pid}/ns/net` });
      run.unix.ownNetns = true;
      // Its other network namespaces' Unix sockets are read through the first task in each.
      if (ns.netNested.length) run.unix.nestedNetns = ns.netNested.map((n) => ({ link: n.link, path: `/proc/${n.pid}/ns/net` }));
    }
    run.users = ns.users;
    if (ns.own.some((k) => k.name === 'mnt')) {
      // Its fds' links read as the tree sees them: stasis looks at them through its root.
      run.ghosts.mntRoot = `/proc/${pid}/root`;
      const mine = readMounts(pid);
      const ids = new Set(mine.map((m) => m.mountId));
      const list = mine.map((m) => ({ ...m, proc: `/proc/${pid}/root` }));
      // A file on a mount of a nested namespace is seen from a task in it.
      for (const n of ns.mntNested) {
        for (const m of readMounts(n.pid)) {
          ids.add(m.mountId);
          list.push({ ...m, proc: `/proc/${n.pid}/root` });
          run.ghosts.mntRoots.set(m.mountId, `/proc/${n.pid}/root`);
        }
      }
      run.mnt = { ids, list };
    }
    const cgroups = collectCgroups(tree.flatMap((t) => (t.frozen ? [{ pid: t.pid, tids: t.frozen.tids }] : [])), opts.manageCgroups ?? 'soft', ns.own.some((k) => k.name === 'cgroup'), log, opts.cgroupRoots);
    locked = true; // a lock that failed half-way is undone as well
    notify('network-lock');
    progress('collecting');
    const live = collectTasks(run, tree, opts.shellJob ?? false);
    const ownPidNs = ns.own.some((k) => k.name === 'pid');
    if (ns.users !== SAME_IDS || ownPidNs) refuseSharedFdTables(live.map((l) => ({ pid: l.t.pid, filesId: l.kobj.filesId })), ns.users !== SAME_IDS ? 'a user namespace' : 'a pid namespace');
    for (const l of live) {
      const tc = l.task.cores[0]?.core.tc;
      if (tc) tc.cgSet = cgroups.setOf.get(l.t.pid) ?? OWN_CG_SET;
    }

    progress('memory');
    const tMem = performance.now();
    const stats = dumpMemory(run, live, kernel, inc, ioBuf);
    const memMs = performance.now() - tMem;
    log.info(`memory: ${stats.pagesWritten} pages written of ${stats.pagesScanned} scanned in ${memMs.toFixed(1)} ms`);

    progress('writing images');
    writeFileImages(run, live);
    writeTaskImages(run, live);
    writePstree(run, tree, live);
    dumpNamespaces({ imagesDir, log, note: run.note, mounts }, ns, pid, (l) => run.kobj.nsIdOf(l));
    if (cgroups.image) run.note(writeImage(imagesDir, 'cgroup', undefined, [cgroups.image]));
    const frozenMs = performance.now() - tFrozen;
    const { shmem, ids, note } = run;
    note(writeImage(imagesDir, 'stats', 'dump', [create(StatsEntrySchema, {
      dump: {
        freezingTime: Math.round((tFrozen - t0) * 1000), frozenTime: Math.round(frozenMs * 1000),
        memdumpTime: Math.round(memMs * 1000), memwriteTime: Math.round(memMs * 1000),
        pagesScanned: BigInt(stats.pagesScanned), pagesSkippedParent: BigInt(stats.pagesSkippedParent),
        pagesWritten: BigInt(stats.pagesWritten), pagesLazy: 0n, kcmpCalls: BigInt(ids.kcmpCalls),
        ...(shmem.stats.objects ? { shpagesScanned: BigInt(shmem.stats.pagesScanned), shpagesSkippedParent: BigInt(shmem.stats.pagesSkippedParent), shpagesWritten: BigInt(shmem.stats.pagesWritten) } : {}),
      },
    })]));
    // Last: an image set without an inventory is known to be incomplete.
    note(writeImage(imagesDir, 'inventory', undefined, [create(InventoryEntrySchema, {
      imgVersion: 2, fdinfoPerId: true, rootIds: run.kobj.root, nsPerId: true, rootCgSet: OWN_CG_SET, lsmtype: Lsmtype.NO_LSM,
      dumpUptime: BigInt(Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8')) * 1e6)),
      dumpCriuRunId: FORMAT_TAG, networkLockMethod: LOCK_METHOD_CODES[lockMethod], ...(opts.tcpClose ? { tcpClose: true } : {}),
    })]));

    notify('post-dump');
    // Tracking goes on only for a tree left running that asked for it (CRIU's --track-mem).
    inc.commit((opts.leaveRunning ?? false) && (opts.trackMem ?? false));
    // The checksums last, once every image is complete: a tree left running runs meanwhile,
    // a tree to be killed is killed only once its images are whole.
    let downtimeMs = 0;
    if (opts.leaveRunning) {
      // The bytes taken from pty pairs go back before anything of the tree runs.
      run.ttys.putBack();
      // Connections leave repair mode, unlocked, before the tree runs again.
      run.tcp.release();
      thawTree(tree, log);
      downtimeMs = performance.now() - tFreeze;
      locked = false;
      unlockQuietly(notify, log);
    }
    progress('checksums');
    run.note(writeSums(imagesDir, run.written, run.sums));
    closeInFlight(run.unix); // the files in flight stasis took: their queues still hold them
    if (!opts.leaveRunning) {
      killTree(tree, run.inject);
      run.ttys.close();
      // Its connections die silently with it (closed in repair mode), and stay locked.
      run.tcp.killed();
      downtimeMs = performance.now() - tFreeze;
    }
    if (run.tcp.lock.count) log.info(`${run.tcp.lock.count} TCP connection(s) ${opts.leaveRunning ? 'unlocked again' : `stay locked (${lockMethod}) until they are restored`}`);
    log.info(`dump done: tree ${opts.leaveRunning ? 'left running' : 'killed'}, ${downtimeMs.toFixed(1)} ms frozen`);
    const imageBytes = run.written.reduce((n, f) => n + fs.statSync(f).size, 0);
    return {
      pids: tree.map((t) => t.pid), pagesScanned: stats.pagesScanned, pagesWritten: stats.pagesWritten, imageBytes,
      shmemObjects: shmem.stats.objects, shmemPagesScanned: shmem.stats.pagesScanned, shmemPagesWritten: shmem.stats.pagesWritten,
      kcmpCalls: ids.kcmpCalls, freezeMs: tFrozen - t0, frozenMs, totalMs: performance.now() - t0,
      pagesSkippedParent: stats.pagesSkippedParent, downtimeMs, trackBackend: inc.backend,
    };
  } catch (err) {
    log.error(`dump failed, the tree is thawed: ${(err as Error).message}`);
    inc.abort();
    try {
      run.ttys.putBack();
    } catch (e) {
      log.error(`the bytes queued in a pty could not all be put back: ${(e as Error).message}`);
    }
    run.tcp.release();
    closeInFlight(run.unix);
    thawTree(tree, log);
    if (locked) unlockQuietly(notify, log);
    for (const f of run.written) fs.rmSync(f, { force: true });
    run.ghosts.removeLinks();
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_DUMP_FAILED', `Cannot dump pid ${pid}: ${(err as Error).message}; it was left running`, { cause: err });
  }
}

/** After a failed dump the network goes back as it was; a client that fails that too is only logged. */
function unlockQuietly(notify: NonNullable<DumpOptions['notify']>, log: { warn(m: string): void }): void {
  try {
    notify('network-unlock');
  } catch (e) {
    log.warn(`network-unlock after the failed dump failed: ${(e as Error).message}`);
  }
}

/**
 * In a user or pid namespace of the tree's own, each task takes what it needs from stasis
 * through an fd of its own table (the pidfd of stasis, or the courier: restore-task.ts,
 * fd-courier.ts) and closes it: tasks sharing one table (CLONE_FILES) would find it gone
 * (the restore failed with EBADF). Refused before anything is written.
 */
function refuseSharedFdTables(tasks: { pid: number; filesId: number }[], where: string): void {
  const by = new Map<number, number>();
  for (const t of tasks) {
    const first = by.get(t.filesId);
    if (first !== undefined) throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${t.pid}: it shares its fd table with pid ${first} (CLONE_FILES), and stasis cannot restore a shared fd table in ${where} of the tree's own yet`);
    by.set(t.filesId, t.pid);
  }
}
