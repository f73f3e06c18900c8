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
import { PagemapEntrySchema, PagemapHeadSchema } from '../image/gen/stasis/pagemap_pb.js';
import { PE } from '../image/pagemap-flags.js';
import { StatsEntrySchema } from '../image/gen/stasis/stats_pb.js';
import { FileIds } from '../files/index.js';
import { PageDumper } from '../mem/dump-pages.js';
import { hasDumpablePages } from '../mem/vma.js';
import { StasisError } from '../errors.js';
import { freeze, thaw, killFrozen, type Frozen } from './freeze.js';
import { collectTask } from './collect-task.js';
import { dumpFds } from './dump-fds.js';
import { FORMAT_TAG } from './format.js';
import type { DumpOptions, DumpResult } from '../api/types.js';

export function dump(opts: DumpOptions): DumpResult {
  const t0 = performance.now();
  const { pid, imagesDir } = opts;
  if (!Number.isInteger(pid) || pid <= 0) throw new StasisError('E_BAD_ARGS', `Invalid pid ${pid}`);
  if (!fs.existsSync(`/proc/${pid}`)) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
  fs.mkdirSync(imagesDir, { recursive: true });
  const kernel = probeKernel();
  const progress = (phase: string, done = 0, total = 0) => opts.onProgress?.({ phase, done, total });

  progress('freezing');
  const frozen: Frozen = freeze(pid);
  const tFrozen = performance.now();
  const written: string[] = [];
  const note = (f: string) => {
    written.push(f);
    return f;
  };
  try {
    progress('collecting');
    const ids = new FileIds();
    const task = collectTask(pid, frozen.tids, ids);
    const fds = dumpFds({ pid, imagesDir, shellJob: opts.shellJob ?? false, ids }, task.stat.session, task.stat.pgrp);
    const kobj = create(TaskKobjIdsEntrySchema, { vmId: 1, filesId: 1, fsId: 1, sighandId: 1 });

    progress('memory');
    const tMem = performance.now();
    const pagesId = 1;
    const pagesFile = note(imagePath(imagesDir, 'pages', pagesId));
    const out = fs.openSync(pagesFile, 'w', 0o600);
    const toScan = task.vmas.filter(hasDumpablePages).reduce((n, v) => n + Number((v.end - v.start) / 4096n), 0);
    const pages = new PageDumper(pid, out, kernel.zeroPfn, (n) => progress('memory', n, toScan));
    try {
      pages.dumpVmas(task.vmas);
    } finally {
      pages.close();
      fs.closeSync(out);
    }
    const memMs = performance.now() - tMem;

    progress('writing images');
    note(writeImage(imagesDir, 'pagemap', pid, {
      head: create(PagemapHeadSchema, { pagesId }),
      entries: pages.runs.map((r) => create(PagemapEntrySchema, { vaddr: r.vaddr, nrPages: r.nrPages, flags: PE.PRESENT })),
    }));
    // Objects before the fds that name them.
    note(writeImage(imagesDir, 'files', undefined, [...task.files, ...fds.files]));
    if (fds.ttyInfos.length) note(writeImage(imagesDir, 'tty-info', undefined, fds.ttyInfos));
    note(writeImage(imagesDir, 'fdinfo', kobj.filesId, fds.fdinfos));
    note(writeImage(imagesDir, 'fs', pid, [{ $typeName: 'stasis.image.FsEntry', cwdId: task.cwdId, rootId: task.rootId, umask: task.umask }]));
    note(writeImage(imagesDir, 'mm', pid, [task.mm]));
    for (const c of task.cores) note(writeImage(imagesDir, 'core', c.tid, [c.core]));
    note(writeImage(imagesDir, 'ids', pid, [kobj]));
    note(writeImage(imagesDir, 'pstree', undefined, [
      create(PstreeEntrySchema, { pid, ppid: task.stat.ppid, pgid: task.stat.pgrp, sid: task.stat.session, threads: frozen.tids }),
    ]));
    const frozenMs = performance.now() - tFrozen;
    note(writeImage(imagesDir, 'stats', 'dump', [create(StatsEntrySchema, {
      dump: {
        freezingTime: Math.round((tFrozen - t0) * 1000), frozenTime: Math.round(frozenMs * 1000),
        memdumpTime: Math.round(memMs * 1000), memwriteTime: Math.round(memMs * 1000),
        pagesScanned: BigInt(pages.stats.pagesScanned), pagesSkippedParent: 0n,
        pagesWritten: BigInt(pages.stats.pagesWritten), pagesLazy: 0n,
      },
    })]));
    note(writeImage(imagesDir, 'inventory', undefined, [create(InventoryEntrySchema, {
      imgVersion: 2, fdinfoPerId: true, rootIds: kobj, lsmtype: Lsmtype.NO_LSM,
      dumpUptime: BigInt(Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8')) * 1e6)),
      dumpCriuRunId: FORMAT_TAG,
    })]));

    if (opts.leaveRunning) thaw(frozen);
    else killFrozen(frozen);
    const imageBytes = written.reduce((n, f) => n + fs.statSync(f).size, 0);
    return {
      pids: [pid], pagesScanned: pages.stats.pagesScanned, pagesWritten: pages.stats.pagesWritten, imageBytes,
      kcmpCalls: ids.kcmpCalls, freezeMs: tFrozen - t0, frozenMs, totalMs: performance.now() - t0,
    };
  } catch (err) {
    thaw(frozen);
    for (const f of written) fs.rmSync(f, { force: true });
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_DUMP_FAILED', `Cannot dump pid ${pid}: ${(err as Error).message}; it was left running`, { cause: err });
  }
}
