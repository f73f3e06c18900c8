// The steps of `stasis dump` (dump.ts runs them in order), each writing its images through
// the run's `note`, which keeps the list of files a failed dump removes.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import type { KernelFeatures } from '../sys/index.js';
import { writeImage, imagePath } from '../image/index.js';
import { PstreeEntrySchema } from '../image/gen/stasis/pstree_pb.js';
import { TaskKobjIdsEntrySchema, CoreEntrySchema, CoreEntry_March, type TaskKobjIdsEntry } from '../image/gen/stasis/core_pb.js';
import { writePagemapImage } from '../image/pagemap-writer.js';
import {
  FileIds, newPipeDataSink, writePipeData, GhostDumper, LockCollector, DEFAULT_GHOST_LIMIT, newUnixSkSink, checkUnixPeers,
  writeSkQueues, type DumpFileCtx,
} from '../files/index.js';
import { PageDumper } from '../mem/dump-pages.js';
import { ShmemDumper } from '../mem/shmem-dump.js';
import { hasDumpablePages } from '../mem/vma.js';
import { parseStat } from '../proc/index.js';
import { collectTask, type CollectedTask } from './collect-task.js';
import { dumpFds, type DumpedFds } from './dump-fds.js';
import type { TreeTask } from './freeze-tree.js';
import type { Incremental } from './incremental.js';

/** What every step of one dump shares: where images go, and the objects named across tasks. */
export interface DumpRun {
  imagesDir: string;
  /** Records an image file as written (a failed dump removes them); returns its path. */
  note: (file: string) => string;
  progress: (phase: string, done?: number, total?: number) => void;
  ids: FileIds;
  pipeData: DumpFileCtx['pipeData'];
  unix: DumpFileCtx['unix'];
  /** Shared memory objects are named as fds and VMAs are seen (a memfd has both). */
  shmem: ShmemDumper;
  ghosts: GhostDumper;
  locks: LockCollector;
}

export function newRun(imagesDir: string, kernel: KernelFeatures, ghostLimit: number | undefined, progress: DumpRun['progress']): DumpRun & { written: string[] } {
  const written: string[] = [];
  const ids = new FileIds();
  return {
    imagesDir, progress, written, ids,
    note: (f) => {
      written.push(f);
      return f;
    },
    pipeData: newPipeDataSink(),
    unix: newUnixSkSink(),
    shmem: new ShmemDumper(kernel.zeroPfn, () => ids.fresh()),
    ghosts: new GhostDumper(ghostLimit ?? DEFAULT_GHOST_LIMIT),
    locks: new LockCollector(),
  };
}

export interface LiveTask {
  t: TreeTask;
  task: CollectedTask;
  fds: DumpedFds;
  /** The task's number: its pages-N.img and fdinfo-N.img. */
  n: number;
  kobj: TaskKobjIdsEntry;
}

/** Everything about every live task: registers, memory layout, fds (the tree is frozen). */
export function collectTasks(run: DumpRun, tree: TreeTask[], shellJob: boolean): LiveTask[] {
  const live = tree.filter((t) => t.frozen).map((t, i) => {
    const task = collectTask(t.pid, t.frozen!.tids, run.ids);
    const fds = dumpFds({
      pid: t.pid, imagesDir: run.imagesDir, shellJob, ids: run.ids, pipeData: run.pipeData, ghosts: run.ghosts, locks: run.locks,
      memfds: run.shmem, unix: run.unix,
    }, task.stat.session, task.stat.pgrp);
    // One set of kernel objects per task: threads share them, processes do not (yet).
    const n = i + 1;
    return { t, task, fds, n, kobj: create(TaskKobjIdsEntrySchema, { vmId: n, filesId: n, fsId: n, sighandId: n }) };
  });
  // Only once every task is collected: a socket's peer may be in a later task.
  checkUnixPeers(run.unix);
  return live;
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
  for (const l of live) {
    const out = fs.openSync(run.note(imagePath(run.imagesDir, 'pages', l.n)), 'w', 0o600);
    const before = stats.pagesScanned;
    const pages = new PageDumper(l.t.pid, out, kernel.zeroPfn, {
      ...inc.forTask(l.t.pid, l.task.vmas), pagemapScan: kernel.pagemapScan, buffer, onScanned: (n) => run.progress('memory', before + n, toScan),
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
    run.note(writePagemapImage(run.imagesDir, l.t.pid, l.n, pages.entries));
  }
  for (const l of live) run.shmem.add(l.t.pid, l.task.vmas, l.task.mm.vmas);
  run.shmem.dump(run.imagesDir, live.length + 1, run.note, inc.parentDir);
  return stats;
}

/** The file objects, once each, before the per-task fd images that name them; then their contents. */
export function writeFileImages(run: DumpRun, live: LiveTask[]): void {
  const { imagesDir, note, shmem, ghosts, locks } = run;
  note(writeImage(imagesDir, 'files', undefined, [...live.flatMap((l) => [...l.task.files, ...l.fds.files]), ...shmem.files]));
  if (shmem.memfdInodes.length) note(writeImage(imagesDir, 'memfd-inode', undefined, shmem.memfdInodes));
  for (const g of ghosts.ghosts) note(writeImage(imagesDir, 'ghost-file', g.id, g.image));
  if (ghosts.remaps.length) note(writeImage(imagesDir, 'remap-fpath', undefined, ghosts.remaps));
  if (locks.entries.length) note(writeImage(imagesDir, 'file-locks', undefined, locks.entries));
  const ttys = live.flatMap((l) => l.fds.ttyInfos);
  if (ttys.length) note(writeImage(imagesDir, 'tty-info', undefined, ttys));
  for (const f of writePipeData(imagesDir, run.pipeData)) note(f);
  for (const f of writeSkQueues(imagesDir, run.unix)) note(f);
}

/** Per task: fds, fs, mm, a core per thread, kernel object ids. */
export function writeTaskImages(run: DumpRun, live: LiveTask[]): void {
  const { imagesDir, note } = run;
  for (const l of live) {
    const p = l.t.pid;
    note(writeImage(imagesDir, 'fdinfo', l.kobj.filesId, l.fds.fdinfos));
    note(writeImage(imagesDir, 'fs', p, [{ $typeName: 'stasis.image.FsEntry', cwdId: l.task.cwdId, rootId: l.task.rootId, umask: l.task.umask }]));
    note(writeImage(imagesDir, 'mm', p, [l.task.mm]));
    for (const c of l.task.cores) note(writeImage(imagesDir, 'core', c.tid, [c.core]));
    note(writeImage(imagesDir, 'ids', p, [l.kobj]));
  }
}

const TASK_DEAD = 2;

/** The tree, parents before children; a zombie gets a core with only its exit status. */
export function writePstree(run: DumpRun, tree: TreeTask[], live: LiveTask[]): void {
  const pstree = tree.map((t) => {
    const l = live.find((x) => x.t === t);
    if (l) return create(PstreeEntrySchema, { pid: t.pid, ppid: t.ppid, pgid: l.task.stat.pgrp, sid: l.task.stat.session, threads: t.frozen!.tids });
    // A zombie: its group and session from /proc (still readable), its status in its core.
    const st = parseStat(fs.readFileSync(`/proc/${t.pid}/stat`, 'utf8'));
    run.note(writeImage(run.imagesDir, 'core', t.pid, [create(CoreEntrySchema, {
      mtype: CoreEntry_March.X86_64,
      tc: { taskState: TASK_DEAD, exitCode: t.zombieStatus ?? 0, personality: 0, flags: 0, blkSigset: 0n, comm: 'zombie' },
    })]));
    return create(PstreeEntrySchema, { pid: t.pid, ppid: t.ppid, pgid: st.pgrp, sid: st.session, threads: [] });
  });
  run.note(writeImage(run.imagesDir, 'pstree', undefined, pstree));
}
