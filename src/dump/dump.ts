// `stasis dump`: the phases, top to bottom. Nothing is written until the task is frozen and
// everything about it has been read; the inventory goes last, so an image set without one
// is known to be incomplete. Any failure thaws the task and removes what was written.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { probeKernel } from '../sys/index.js';
import { writeImage, imagePath } from '../image/index.js';
import { InventoryEntrySchema, Lsmtype } from '../image/gen/stasis/inventory_pb.js';
import { PstreeEntrySchema } from '../image/gen/stasis/pstree_pb.js';
import { TaskKobjIdsEntrySchema } from '../image/gen/stasis/core_pb.js';
import { writePagemapImage } from '../image/pagemap-writer.js';
import { StatsEntrySchema } from '../image/gen/stasis/stats_pb.js';
import { FileIds, newPipeDataSink, writePipeData, GhostDumper, LockCollector, DEFAULT_GHOST_LIMIT, newUnixSkSink, checkUnixPeers, writeSkQueues } from '../files/index.js';
import { PageDumper, PAGE_BUF_SIZE } from '../mem/dump-pages.js';
import { ShmemDumper } from '../mem/shmem-dump.js';
import { hasDumpablePages } from '../mem/vma.js';
import { StasisError } from '../errors.js';
import { freezeTree, thawTree, killTree } from './freeze-tree.js';
import { parseStat } from '../proc/index.js';
import { CoreEntrySchema, CoreEntry_March } from '../image/gen/stasis/core_pb.js';
import { collectTask } from './collect-task.js';
import { dumpFds } from './dump-fds.js';
import { FORMAT_TAG } from './format.js';
import { Incremental } from './incremental.js';
import type { DumpOptions, DumpResult } from '../api/types.js';

export function dump(opts: DumpOptions): DumpResult {
  const t0 = performance.now();
  const { pid, imagesDir } = opts;
  if (!Number.isInteger(pid) || pid <= 0) throw new StasisError('E_BAD_ARGS', `Invalid pid ${pid}`);
  if (!fs.existsSync(`/proc/${pid}`)) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
  fs.mkdirSync(imagesDir, { recursive: true });
  const kernel = probeKernel();
  const progress = (phase: string, done = 0, total = 0) => opts.onProgress?.({ phase, done, total });
  const inc = Incremental.open({
    imagesDir, prevImagesDir: opts.prevImagesDir, track: opts.trackMem ?? false, backend: opts.trackBackend ?? 'auto', kernel, preDump: false,
  });

  const ioBuf = Buffer.alloc(PAGE_BUF_SIZE); // zero-filled: faulted in now, not while the tree is frozen
  progress('freezing');
  const tFreeze = performance.now();
  let tree;
  try {
    tree = freezeTree(pid);
  } catch (e) {
    inc.abort();
    throw e;
  }
  const tFrozen = performance.now();
  const written: string[] = [];
  const note = (f: string) => {
    written.push(f);
    return f;
  };
  try {
    progress('collecting');
    const ids = new FileIds();
    const shellJob = opts.shellJob ?? false;
    const pipeData = newPipeDataSink();
    const unix = newUnixSkSink();
    // Shared memory objects are named as fds and VMAs are seen (a memfd has both).
    const shmem = new ShmemDumper(kernel.zeroPfn, () => ids.fresh());
    const ghosts = new GhostDumper(opts.ghostLimit ?? DEFAULT_GHOST_LIMIT);
    const locks = new LockCollector();
    const live = tree.filter((t) => t.frozen).map((t, i) => {
      const task = collectTask(t.pid, t.frozen!.tids, ids);
      const fds = dumpFds({ pid: t.pid, imagesDir, shellJob, ids, pipeData, ghosts, locks, memfds: shmem, unix }, task.stat.session, task.stat.pgrp);
      // One set of kernel objects per task: threads share them, processes do not (yet).
      const n = i + 1;
      return { t, task, fds, n, kobj: create(TaskKobjIdsEntrySchema, { vmId: n, filesId: n, fsId: n, sighandId: n }) };
    });
    // Only once every task is collected: a socket's peer may be in a later task.
    checkUnixPeers(unix);

    progress('memory');
    const tMem = performance.now();
    const toScan = live.reduce((n, l) => n + l.task.vmas.filter(hasDumpablePages).reduce((m, v) => m + Number((v.end - v.start) / 4096n), 0), 0);
    const stats = { pagesScanned: 0, pagesWritten: 0, pagesSkippedParent: 0 };
    for (const l of live) {
      const out = fs.openSync(note(imagePath(imagesDir, 'pages', l.n)), 'w', 0o600);
      const before = stats.pagesScanned;
      const pages = new PageDumper(l.t.pid, out, kernel.zeroPfn, {
        ...inc.forTask(l.t.pid, l.task.vmas), pagemapScan: kernel.pagemapScan, buffer: ioBuf, onScanned: (n) => progress('memory', before + n, toScan),
      });
      try {
        pages.dumpVmas(l.task.vmas);
      } finally {
        pages.close();
        fs.closeSync(out);
      }
      stats.pagesScanned += pages.stats.pagesScanned;
      stats.pagesWritten += pages.stats.pagesWritten;
      stats.pagesSkippedParent += pages.stats.pagesSkippedParent;
      note(writePagemapImage(imagesDir, l.t.pid, l.n, pages.entries));
    }
    // Shared memory once per object, after every task's private pages; its pages ids follow theirs.
    for (const l of live) shmem.add(l.t.pid, l.task.vmas, l.task.mm.vmas);
    shmem.dump(imagesDir, live.length + 1, note, inc.parentDir);
    const memMs = performance.now() - tMem;

    progress('writing images');
    // Objects before the fds that name them.
    note(writeImage(imagesDir, 'files', undefined, [...live.flatMap((l) => [...l.task.files, ...l.fds.files]), ...shmem.files]));
    if (shmem.memfdInodes.length) note(writeImage(imagesDir, 'memfd-inode', undefined, shmem.memfdInodes));
    for (const g of ghosts.ghosts) note(writeImage(imagesDir, 'ghost-file', g.id, g.image));
    if (ghosts.remaps.length) note(writeImage(imagesDir, 'remap-fpath', undefined, ghosts.remaps));
    if (locks.entries.length) note(writeImage(imagesDir, 'file-locks', undefined, locks.entries));
    const ttys = live.flatMap((l) => l.fds.ttyInfos);
    if (ttys.length) note(writeImage(imagesDir, 'tty-info', undefined, ttys));
    for (const f of writePipeData(imagesDir, pipeData)) note(f);
    for (const f of writeSkQueues(imagesDir, unix)) note(f);
    for (const l of live) {
      const p = l.t.pid;
      note(writeImage(imagesDir, 'fdinfo', l.kobj.filesId, l.fds.fdinfos));
      note(writeImage(imagesDir, 'fs', p, [{ $typeName: 'stasis.image.FsEntry', cwdId: l.task.cwdId, rootId: l.task.rootId, umask: l.task.umask }]));
      note(writeImage(imagesDir, 'mm', p, [l.task.mm]));
      for (const c of l.task.cores) note(writeImage(imagesDir, 'core', c.tid, [c.core]));
      note(writeImage(imagesDir, 'ids', p, [l.kobj]));
    }
    const pstree = tree.map((t) => {
      const l = live.find((x) => x.t === t);
      if (l) return create(PstreeEntrySchema, { pid: t.pid, ppid: t.ppid, pgid: l.task.stat.pgrp, sid: l.task.stat.session, threads: t.frozen!.tids });
      // A zombie: its group and session from /proc (still readable), its status in its core.
      const st = parseStat(fs.readFileSync(`/proc/${t.pid}/stat`, 'utf8'));
      note(writeImage(imagesDir, 'core', t.pid, [zombieCore(t.zombieStatus ?? 0)]));
      return create(PstreeEntrySchema, { pid: t.pid, ppid: t.ppid, pgid: st.pgrp, sid: st.session, threads: [] });
    });
    note(writeImage(imagesDir, 'pstree', undefined, pstree));
    const frozenMs = performance.now() - tFrozen;
    note(writeImage(imagesDir, 'stats', 'dump', [create(StatsEntrySchema, {
      dump: {
        freezingTime: Math.round((tFrozen - t0) * 1000), frozenTime: Math.round(frozenMs * 1000),
        memdumpTime: Math.round(memMs * 1000), memwriteTime: Math.round(memMs * 1000),
        pagesScanned: BigInt(stats.pagesScanned), pagesSkippedParent: BigInt(stats.pagesSkippedParent),
        pagesWritten: BigInt(stats.pagesWritten), pagesLazy: 0n, kcmpCalls: BigInt(ids.kcmpCalls),
        ...(shmem.stats.objects ? { shpagesScanned: BigInt(shmem.stats.pagesScanned), shpagesSkippedParent: BigInt(shmem.stats.pagesSkippedParent), shpagesWritten: BigInt(shmem.stats.pagesWritten) } : {}),
      },
    })]));
    note(writeImage(imagesDir, 'inventory', undefined, [create(InventoryEntrySchema, {
      imgVersion: 2, fdinfoPerId: true, rootIds: live[0]!.kobj, lsmtype: Lsmtype.NO_LSM,
      dumpUptime: BigInt(Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8')) * 1e6)),
      dumpCriuRunId: FORMAT_TAG,
    })]));

    // Tracking goes on only for a tree left running that asked for it (CRIU's --track-mem).
    inc.commit((opts.leaveRunning ?? false) && (opts.trackMem ?? false));
    if (opts.leaveRunning) thawTree(tree);
    else killTree(tree);
    const downtimeMs = performance.now() - tFreeze;
    const imageBytes = written.reduce((n, f) => n + fs.statSync(f).size, 0);
    return {
      pids: tree.map((t) => t.pid), pagesScanned: stats.pagesScanned, pagesWritten: stats.pagesWritten, imageBytes,
      shmemObjects: shmem.stats.objects, shmemPagesScanned: shmem.stats.pagesScanned, shmemPagesWritten: shmem.stats.pagesWritten,
      kcmpCalls: ids.kcmpCalls, freezeMs: tFrozen - t0, frozenMs, totalMs: performance.now() - t0,
      pagesSkippedParent: stats.pagesSkippedParent, downtimeMs, trackBackend: inc.backend,
    };
  } catch (err) {
    inc.abort();
    thawTree(tree);
    for (const f of written) fs.rmSync(f, { force: true });
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_DUMP_FAILED', `Cannot dump pid ${pid}: ${(err as Error).message}; it was left running`, { cause: err });
  }
}

const TASK_DEAD = 2;

/** A zombie's core: only its state and the wait status its parent will collect. */
function zombieCore(status: number) {
  return create(CoreEntrySchema, {
    mtype: CoreEntry_March.X86_64,
    tc: { taskState: TASK_DEAD, exitCode: status, personality: 0, flags: 0, blkSigset: 0n, comm: 'zombie' },
  });
}
