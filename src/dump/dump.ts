// `stasis dump`: the phases, top to bottom. Nothing is written until the task is frozen and
// everything about it has been read; the inventory goes last, so an image set without one
// is known to be incomplete. Any failure thaws the task and removes what was written.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { probeKernel } from '../sys/index.js';
import { writeImage } from '../image/index.js';
import { InventoryEntrySchema, Lsmtype } from '../image/gen/stasis/inventory_pb.js';
import { StatsEntrySchema } from '../image/gen/stasis/stats_pb.js';
import { PAGE_BUF_SIZE } from '../mem/dump-pages.js';
import { StasisError } from '../errors.js';
import { thawTree, killTree } from './freeze-tree.js';
import { newRun, collectTasks, dumpMemory, writeFileImages, writeTaskImages, writePstree } from './dump-steps.js';
import { FORMAT_TAG } from './format.js';
import { Incremental, freezeTracked } from './incremental.js';
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
  const run = newRun(imagesDir, kernel, opts.ghostLimit, progress);
  progress('freezing');
  const tFreeze = performance.now();
  const tree = freezeTracked(pid, inc);
  const tFrozen = performance.now();
  try {
    progress('collecting');
    const live = collectTasks(run, tree, opts.shellJob ?? false);

    progress('memory');
    const tMem = performance.now();
    const stats = dumpMemory(run, live, kernel, inc, ioBuf);
    const memMs = performance.now() - tMem;

    progress('writing images');
    writeFileImages(run, live);
    writeTaskImages(run, live);
    writePstree(run, tree, live);
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
      imgVersion: 2, fdinfoPerId: true, rootIds: live[0]!.kobj, lsmtype: Lsmtype.NO_LSM,
      dumpUptime: BigInt(Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8')) * 1e6)),
      dumpCriuRunId: FORMAT_TAG,
    })]));

    // Tracking goes on only for a tree left running that asked for it (CRIU's --track-mem).
    inc.commit((opts.leaveRunning ?? false) && (opts.trackMem ?? false));
    if (opts.leaveRunning) thawTree(tree);
    else killTree(tree);
    const downtimeMs = performance.now() - tFreeze;
    const imageBytes = run.written.reduce((n, f) => n + fs.statSync(f).size, 0);
    return {
      pids: tree.map((t) => t.pid), pagesScanned: stats.pagesScanned, pagesWritten: stats.pagesWritten, imageBytes,
      shmemObjects: shmem.stats.objects, shmemPagesScanned: shmem.stats.pagesScanned, shmemPagesWritten: shmem.stats.pagesWritten,
      kcmpCalls: ids.kcmpCalls, freezeMs: tFrozen - t0, frozenMs, totalMs: performance.now() - t0,
      pagesSkippedParent: stats.pagesSkippedParent, downtimeMs, trackBackend: inc.backend,
    };
  } catch (err) {
    inc.abort();
    thawTree(tree);
    for (const f of run.written) fs.rmSync(f, { force: true });
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_DUMP_FAILED', `Cannot dump pid ${pid}: ${(err as Error).message}; it was left running`, { cause: err });
  }
}
