// Reading and checking an image set before anything is created: every image a task needs
// is decoded, its cross references resolved and the pages image measured, so a missing,
// corrupt or truncated image fails the restore while no process exists yet.
import fs from 'node:fs';
import { readImage, imageExists } from '../image/index.js';
import { resolveTaskPages, type PageSource } from '../mem/page-chain.js';
import type { CoreEntry, TaskKobjIdsEntry } from '../image/gen/stasis/core_pb.js';
import type { MmEntry } from '../image/gen/stasis/mm_pb.js';
import type { FdinfoEntry, FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { FsEntry } from '../image/gen/stasis/fs_pb.js';
import type { PstreeEntry } from '../image/gen/stasis/pstree_pb.js';
import { formatVersionOf, FORMAT_VERSION } from '../dump/format.js';
import type { PageRun } from '../mem/page-runs.js';
import { StasisError } from '../errors.js';
import { readShmem, type ShmemImages } from './read-shmem.js';

export interface TaskImages {
  pstree: PstreeEntry;
  /** The leader's core (process-wide state and the leader thread). */
  core: CoreEntry;
  /** The other threads, by tid. */
  threads: { tid: number; core: CoreEntry }[];
  ids: TaskKobjIdsEntry;
  mm: MmEntry;
  fs: FsEntry;
  fdinfos: FdinfoEntry[];
  /** Every page with data, in address order. */
  runs: PageRun[];
  /** Where those pages are: this set's pages image and its parents'. */
  pageSources: PageSource[];
}

export interface ZombieImages {
  pstree: PstreeEntry;
  /** The wait status the parent will collect. */
  status: number;
}

export interface ImageSet {
  dir: string;
  files: Map<number, FileEntry>;
  /** Every task in pstree order (parents before children). */
  order: PstreeEntry[];
  tasks: TaskImages[];
  zombies: ZombieImages[];
  /** Shared memory objects, once each, and which VMA maps which. */
  shmem: ShmemImages;
}

const TASK_DEAD = 2;

function one<T>(list: T[], what: string): T {
  if (list.length !== 1 || list[0] === undefined) throw new StasisError('E_CORRUPT', `${what} holds ${list.length} entries, expected 1`);
  return list[0];
}

export function readImageSet(dir: string): ImageSet {
  if (!fs.existsSync(dir)) throw new StasisError('E_NO_IMAGE', `No images directory ${dir}`);
  if (!imageExists(dir, 'inventory', undefined)) {
    throw new StasisError('E_NO_IMAGE', `No inventory.img in ${dir}: not an image set, or an incomplete dump`);
  }
  const inv = one(readImage(dir, 'inventory', undefined), 'inventory.img');
  const version = formatVersionOf(inv.dumpCriuRunId);
  if (version !== null && version > FORMAT_VERSION) {
    throw new StasisError('E_UNSUPPORTED', `Images in ${dir} use format ${version}; this stasis reads up to ${FORMAT_VERSION}`);
  }
  if (inv.preDumpMode) {
    throw new StasisError('E_NO_IMAGE', `Images in ${dir} are a pre-dump (memory only): restore from the dump made after it`);
  }
  const files = new Map<number, FileEntry>();
  for (const f of readImage(dir, 'files', undefined)) {
    if (files.has(f.id)) throw new StasisError('E_CORRUPT', `files.img names file ${f.id} twice`);
    files.set(f.id, f);
  }
  const tree = readImage(dir, 'pstree', undefined);
  if (tree.length === 0) throw new StasisError('E_CORRUPT', 'pstree.img is empty');
  const tasks: TaskImages[] = [];
  const zombies: ZombieImages[] = [];
  const pids = new Set<number>();
  for (const e of tree) {
    if (pids.has(e.pid)) throw new StasisError('E_CORRUPT', `pstree.img lists pid ${e.pid} twice`);
    if (e !== tree[0] && !pids.has(e.ppid)) throw new StasisError('E_CORRUPT', `pstree.img lists pid ${e.pid} before its parent ${e.ppid}`);
    pids.add(e.pid);
    if (e.threads.length) {
      tasks.push(readTask(dir, e, files));
      continue;
    }
    const tc = one(readImage(dir, 'core', e.pid), `core-${e.pid}.img`).tc;
    if (tc?.taskState !== TASK_DEAD) throw new StasisError('E_CORRUPT', `Pid ${e.pid} has no threads and is not a zombie`);
    zombies.push({ pstree: e, status: tc.exitCode });
  }
  if (!tree[0]?.threads.length) throw new StasisError('E_CORRUPT', 'The root task of the image is a zombie');
  const shmem = readShmem(dir, tasks.map((t) => t.mm), files);
  return { dir, files, order: tree, tasks, zombies, shmem };
}

function readTask(dir: string, pstree: PstreeEntry, files: Map<number, FileEntry>): TaskImages {
  const pid = pstree.pid;
  const core = one(readImage(dir, 'core', pid), `core-${pid}.img`);
  if (!core.threadInfo?.gpregs || !core.tc || !core.threadCore) throw new StasisError('E_CORRUPT', `core-${pid}.img lacks thread_info, tc or thread_core`);
  const threads = pstree.threads.filter((t) => t !== pid).map((tid) => {
    const c = one(readImage(dir, 'core', tid), `core-${tid}.img`);
    if (!c.threadInfo?.gpregs || !c.threadCore) throw new StasisError('E_CORRUPT', `core-${tid}.img lacks thread_info or thread_core`);
    return { tid, core: c };
  });
  const ids = one(readImage(dir, 'ids', pid), `ids-${pid}.img`);
  const mm = one(readImage(dir, 'mm', pid), `mm-${pid}.img`);
  const fsEntry = one(readImage(dir, 'fs', pid), `fs-${pid}.img`);
  const fdinfos = readImage(dir, 'fdinfo', ids.filesId);
  // In the chain of parent image sets too (incremental dumps); every level checked now.
  const pages = resolveTaskPages(dir, pid);

  const need = (id: number, what: string) => {
    const f = files.get(id);
    if (!f) throw new StasisError('E_CORRUPT', `${what} of pid ${pid} names file ${id}, which files.img lacks`);
    return f;
  };
  need(mm.exeFileId, 'The exe');
  need(fsEntry.cwdId, 'The cwd');
  need(fsEntry.rootId, 'The root');
  for (const d of fdinfos) need(d.id, `Fd ${d.fd}`);
  for (const v of mm.vmas) if (v.status & (64 | 128)) need(Number(v.shmid), `The mapping at 0x${v.start.toString(16)}`);
  return { pstree, core, threads, ids, mm, fs: fsEntry, fdinfos, runs: pages.runs, pageSources: pages.sources };
}

/** Path of a regular-file entry (exe, cwd, mapped file). */
export function regPath(set: ImageSet, id: number): string {
  const r = set.files.get(id)?.reg;
  if (!r) throw new StasisError('E_CORRUPT', `File ${id} is not a regular file`);
  return r.name;
}
