// `stasis pre-dump`: memory only, while the tree keeps running (CRIU's pre-dump). The tree
// is frozen while its layout is read, tracking is (re-)armed and the pagemap is scanned;
// then it runs again and the pages are read and written. Writes inventory (with
// pre_dump_mode), pstree, pagemap and pages images, stats, and the tracking record.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { kernelFeatures } from '../sys/index.js';
import { writeImage, imagePath } from '../image/index.js';
import { InventoryEntrySchema, Lsmtype } from '../image/gen/stasis/inventory_pb.js';
import { PstreeEntrySchema, type PstreeEntry } from '../image/gen/stasis/pstree_pb.js';
import { writePagemapImage } from '../image/pagemap-writer.js';
import { StatsEntrySchema } from '../image/gen/stasis/stats_pb.js';
import { parseSmaps, parseStat } from '../proc/index.js';
import { collectVmas } from '../mem/collect-vmas.js';
import { PageDumper } from '../mem/dump-pages.js';
import { ShmemDumper } from '../mem/shmem-dump.js';
import type { VmaSpec } from '../mem/vma.js';
import { StasisError } from '../errors.js';
import { thawTree } from './freeze-tree.js';
import { Incremental, freezeTracked } from './incremental.js';
import { refuseFrozenCgroups } from '../cgroup/dump-cgroups.js';
import { FORMAT_TAG } from './format.js';
import type { PreDumpOptions, PreDumpResult } from '../api/types.js';
import { makeImagesDir, createImageFile } from '../image/image-modes.js';
import { writeSums, type FileSum } from '../image/image-sums.js';
import { NO_LOG } from '../log.js';
import { injectOptions } from './dump-steps.js';
import { treePids } from '../ns/index.js';
import { SyscallError } from '../sys/syscall-error.js';

/**
 * Whether `err` (reading the memory of `pid`) came of the process having exited: ESRCH, and it
 * is gone or a zombie. Its memory goes before it is a zombie (exit_mm, then exit_notify): an
 * ESRCH in between finds it still running its exit, so it is given up to a second to get there.
 */
function exitedSince(pid: number, err: unknown): boolean {
  const cause = err instanceof SyscallError ? err : (err as { cause?: unknown } | null)?.cause;
  if (!(cause instanceof SyscallError) || cause.code !== 'ESRCH') return false;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 200; i++) {
    try {
      if (parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).state === 'Z') return true;
    } catch {
      return true;
    }
    Atomics.wait(nap, 0, 0, 5);
  }
  return false;
}

/** CRIU's PRE_DUMP_READ: pages read with process_vm_readv, not spliced. */
const PRE_DUMP_READ = 2;

export function preDump(opts: PreDumpOptions): PreDumpResult {
  const t0 = performance.now();
  const { pid, imagesDir } = opts;
  if (!Number.isInteger(pid) || pid <= 0) throw new StasisError('E_BAD_ARGS', `Invalid pid ${pid}`);
  if (!fs.existsSync(`/proc/${pid}`)) throw new StasisError('E_NO_PROCESS', `Cannot pre-dump pid ${pid}: no such process`);
  refuseFrozenCgroups(pid); // it would never stop for ptrace
  makeImagesDir(imagesDir);
  const kernel = kernelFeatures();
  const progress = (phase: string, done = 0, total = 0) => opts.onProgress?.({ phase, done, total });
  const log = opts.log ?? NO_LOG;
  log.info(`pre-dumping the tree of pid ${pid} into ${imagesDir}`);
  // Before the parent link is made: a run cancelled here leaves nothing.
  progress('freezing');
  const inc = Incremental.open({
    imagesDir, prevImagesDir: opts.prevImagesDir, track: true, backend: opts.trackBackend ?? 'auto', kernel, preDump: true, inject: injectOptions(log),
  });
  const written: string[] = [];
  const note = (f: string) => {
    written.push(f);
    log.debug(`wrote ${f}`);
    return f;
  };
  const tasks: { pid: number; vpid: number; n: number; out: number; pages: PageDumper; vmas: VmaSpec[]; file: string }[] = [];
  const sums = new Map<string, FileSum>();
  const pstree: PstreeEntry[] = [];
  let bytes = 0;
  const closeAll = () => {
    for (const t of tasks) {
      t.pages.close();
      fs.closeSync(t.out);
    }
  };

  opts.notify?.('pre-dump');
  const tFreeze = performance.now();
  const tree = freezeTracked(pid, inc, opts.freezeCgroup !== undefined ? { dir: opts.freezeCgroup, log } : undefined);
  log.info(`froze ${tree.length} task(s): ${tree.map((t) => t.frozen ? t.pid : `${t.pid} (zombie)`).join(', ')}`);
  let downtimeMs = 0;
  try {
    try {
      progress('collecting');
      // Named as the final dump names them: by the pids of the tree's pid namespace.
      const v = treePids(pid);
      tree.filter((t) => t.frozen).forEach((t, i) => {
        const vmas = collectVmas(t.pid, parseSmaps(fs.readFileSync(`/proc/${t.pid}/smaps`, 'utf8'))).map((c) => c.vma);
        const st = parseStat(fs.readFileSync(`/proc/${t.pid}/stat`, 'utf8'));
        pstree.push(create(PstreeEntrySchema, {
          pid: v.pid(t.pid), ppid: t.ppid ? v.pid(t.ppid) : 0, ...(v.pgidSid(t.pid) ?? { pgid: st.pgrp, sid: st.session }), threads: t.frozen!.tids.map((x) => v.pid(x)),
        }));
        const n = i + 1;
        const file = note(imagePath(imagesDir, 'pages', n));
        const out = createImageFile(file);
        const pages = new PageDumper(t.pid, out, kernel.zeroPfn, {
          ...inc.forTask(t.pid, vmas, v.pid(t.pid)), running: true, pagemapScan: kernel.pagemapScan,
          onFlushed: (b) => progress('writing memory', (bytes += b) >> 12, 0),
        });
        tasks.push({ pid: t.pid, vpid: v.pid(t.pid), n, out, pages, vmas, file });
        pages.plan(vmas);
        log.info(`pid ${t.pid}: ${vmas.length} memory areas, ${pages.stats.pagesScanned} pages scanned`);
      });
    } finally {
      thawTree(tree, log);
      downtimeMs = performance.now() - tFreeze;
      log.info(`tree thawed after ${downtimeMs.toFixed(1)} ms, tracked by ${inc.backend ?? 'nothing'}`);
    }

    progress('memory');
    const stats = { pagesScanned: 0, pagesWritten: 0, pagesSkippedParent: 0 };
    for (const t of [...tasks]) {
      try {
        t.pages.write();
      } catch (err) {
        // A task that exited once thawed (a shell's short-lived child) has no pages to keep: a
        // later dump cannot hold it, and finds no pagemap of its pid here (nor one of a reused pid).
        if (!exitedSince(t.pid, err)) throw err;
        log.info(`pid ${t.pid} exited after the freeze: its pages are left out of the pre-dump`);
        t.pages.close();
        fs.closeSync(t.out);
        fs.rmSync(t.file, { force: true });
        written.splice(written.indexOf(t.file), 1);
        tasks.splice(tasks.indexOf(t), 1);
        pstree.splice(pstree.findIndex((e) => e.pid === t.vpid), 1);
        continue;
      }
      sums.set(t.file, t.pages.sum);
      stats.pagesScanned += t.pages.stats.pagesScanned;
      stats.pagesWritten += t.pages.stats.pagesWritten;
      stats.pagesSkippedParent += t.pages.stats.pagesSkippedParent;
      note(writePagemapImage(imagesDir, t.vpid, t.n, t.pages.entries));
      log.info(`pid ${t.pid}: ${t.pages.stats.pagesWritten} pages written, ${t.pages.stats.pagesSkippedParent} left to the parent`);
    }
    // Shared memory, read while the tree runs: the next dump compares every used page with
    // this copy (shmem-pages.ts), so a page torn by a concurrent write is written again there.
    const shmem = new ShmemDumper(kernel.zeroPfn, () => 0);
    for (const t of tasks) shmem.add(t.pid, t.vmas, []);
    shmem.dump(imagesDir, tasks.length + 1, note, inc.parentDir);
    closeAll();
    tasks.length = 0;
    note(writeImage(imagesDir, 'pstree', undefined, pstree));
    note(writeImage(imagesDir, 'stats', 'dump', [create(StatsEntrySchema, {
      dump: {
        freezingTime: 0, frozenTime: Math.round(downtimeMs * 1000), memdumpTime: 0, memwriteTime: 0,
        pagesScanned: BigInt(stats.pagesScanned), pagesSkippedParent: BigInt(stats.pagesSkippedParent),
        pagesWritten: BigInt(stats.pagesWritten), pagesLazy: 0n,
        ...(shmem.stats.objects ? { shpagesScanned: BigInt(shmem.stats.pagesScanned), shpagesSkippedParent: BigInt(shmem.stats.pagesSkippedParent), shpagesWritten: BigInt(shmem.stats.pagesWritten) } : {}),
      },
    })]));
    opts.notify?.('post-dump');
    inc.commit(true);
    note(writeImage(imagesDir, 'inventory', undefined, [create(InventoryEntrySchema, {
      imgVersion: 2, fdinfoPerId: true, lsmtype: Lsmtype.NO_LSM, preDumpMode: PRE_DUMP_READ,
      dumpUptime: BigInt(Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8')) * 1e6)),
      dumpCriuRunId: FORMAT_TAG,
    })]));
    note(writeSums(imagesDir, written, sums));
    const imageBytes = written.reduce((n, f) => n + fs.statSync(f).size, 0);
    return {
      pids: pstree.map((p) => p.pid), ...stats, imageBytes, trackBackend: inc.backend, downtimeMs, totalMs: performance.now() - t0,
    };
  } catch (err) {
    log.error(`pre-dump failed, the tree runs on: ${(err as Error).message}`);
    closeAll();
    inc.abort();
    for (const f of written) fs.rmSync(f, { force: true });
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_DUMP_FAILED', `Cannot pre-dump pid ${pid}: ${(err as Error).message}; it was left running`, { cause: err });
  }
}
