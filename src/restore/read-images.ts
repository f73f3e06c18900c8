// Reading and checking an image set before anything is created: every image a task needs
// is decoded, its cross references resolved and the pages image measured, so a missing,
// corrupt or truncated image fails the restore while no process exists yet.
import fs from 'node:fs';
import path from 'node:path';
import { readImage, imageExists, readImageFile, IMAGE_KINDS, kindsForFileName } from '../image/index.js';
import { unknownFields } from '../image/unknown-fields.js';
import { resolveTaskPages, type PageSource } from '../mem/page-chain.js';
import { VMA, isMappedByRestore } from '../mem/vma.js';
import { SeccompMode, type CoreEntry, type TaskKobjIdsEntry } from '../image/gen/stasis/core_pb.js';
import type { SeccompEntry } from '../image/gen/stasis/seccomp_pb.js';
import { seccompChain } from './seccomp.js';
import type { MmEntry } from '../image/gen/stasis/mm_pb.js';
import type { CredsEntry } from '../image/gen/stasis/creds_pb.js';
import { FdTypes, type FdinfoEntry, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { FsEntry } from '../image/gen/stasis/fs_pb.js';
import type { PstreeEntry } from '../image/gen/stasis/pstree_pb.js';
import type { InventoryEntry } from '../image/gen/stasis/inventory_pb.js';
import { formatVersionOf, FORMAT_VERSION, SUMS_SINCE_FORMAT, OWN_FILTERS_UNTIL_FORMAT } from '../dump/format.js';
import { encodeFilterInsn } from '../files/sk-opts.js';
import { markHiddenSocketFiles } from './criu-hidden-sockets.js';
import type { PageRuns } from '../mem/page-list.js';
import { StasisError } from '../errors.js';
import { readShmem, type ShmemImages } from './read-shmem.js';
import { verifyImageChain } from '../image/image-sums.js';

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
  runs: PageRuns;
  /** Where those pages are: this set's pages image and its parents'. */
  pageSources: PageSource[];
}

export interface ZombieImages {
  pstree: PstreeEntry;
  /** The wait status the parent will collect. */
  status: number;
  /** Its credentials (stasis's images since format 10; CRIU keeps none for a zombie). */
  creds?: CredsEntry;
}

export interface ImageSet {
  dir: string;
  inventory: InventoryEntry;
  files: Map<number, FileEntry>;
  /** The REG entries that share their id with a kind's own entry (CRIU's tun files: the path and flags of /dev/net/tun), by id. */
  regTwins: Map<number, FileEntry>;
  /** Every task in pstree order (parents before children). */
  order: PstreeEntry[];
  tasks: TaskImages[];
  zombies: ZombieImages[];
  /** Shared memory objects, once each, and which VMA maps which. */
  shmem: ShmemImages;
  /** seccomp.img: every thread's seccomp filters (absent where no thread has one). */
  seccomp?: SeccompEntry;
}

const TASK_DEAD = 2;

function one<T>(list: T[], what: string): T {
  if (list.length !== 1 || list[0] === undefined) throw new StasisError('E_CORRUPT', `${what} holds ${list.length} entries, expected 1`);
  return list[0];
}

/**
 * Checks the checksums of the set in `dir` and of every parent set it reads pages from.
 * Sets of a format older than the checksums (and CRIU's) have none to check.
 */
export function verifyImageSet(dir: string, defer?: (name: string, size: number) => boolean): ReturnType<typeof verifyImageChain> {
  if (!fs.existsSync(dir)) throw new StasisError('E_NO_IMAGE', `No images directory ${dir}`);
  return verifyImageChain(dir, (d) => {
    if (!imageExists(d, 'inventory', undefined)) return false; // reported as missing when read
    const v = formatVersionOf(readImage(d, 'inventory', undefined)[0]?.dumpCriuRunId);
    return v !== null && v >= SUMS_SINCE_FORMAT;
  }, defer);
}

/**
 * Images CRIU wrote may hold fields this stasis does not know (a newer CRIU's state): the
 * restore would go on without them and differ. Refused naming the image, message and field.
 * Pages files and raw images hold no messages.
 */
function refuseUnknownFields(dir: string): void {
  for (const f of fs.readdirSync(dir).sort()) {
    if (!f.endsWith('.img') || /^pages-\d+\.img$/.test(f)) continue;
    if (kindsForFileName(f).some((k) => (IMAGE_KINDS[k] as { layout: string }).layout === 'raw')) continue;
    const found = new Map<string, Set<number>>();
    for (const u of unknownFields(readImageFile(path.join(dir, f)).content)) {
      const type = u.type.replace(/^stasis\.image\./, '');
      for (const n of u.fields) found.set(type, (found.get(type) ?? new Set()).add(n));
    }
    if (found.size) {
      const what = [...found].map(([type, ns]) => `field ${[...ns].join(', ')} of ${type}`).join('; ');
      throw new StasisError('E_UNSUPPORTED', `CRIU's ${f} in ${dir} holds ${what}, which this stasis does not know: restoring without it could differ from the dump`);
    }
  }
}

/**
 * The entries of files.img by id, and the REG entries that share their id with a tun file's
 * TUNF entry after them (CRIU's dump_tunfile writes both); any other id named twice, or a TUNF
 * entry without its REG twin, is a corrupt image.
 */
export function indexFiles(entries: readonly FileEntry[]): { files: Map<number, FileEntry>; regTwins: Map<number, FileEntry> } {
  const files = new Map<number, FileEntry>();
  const regTwins = new Map<number, FileEntry>();
  for (const f of entries) {
    const had = files.get(f.id);
    if (had && had.type === FdTypes.REG && f.type === FdTypes.TUNF && !regTwins.has(f.id)) {
      regTwins.set(f.id, had);
      files.set(f.id, f);
      continue;
    }
    if (had) throw new StasisError('E_CORRUPT', `files.img names file ${f.id} twice`);
    files.set(f.id, f);
  }
  for (const [id, f] of files) if (f.type === FdTypes.TUNF && !regTwins.has(id)) throw new StasisError('E_CORRUPT', `files.img holds tun file ${id} without a REG entry of its id before it`);
  return { files, regTwins };
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
  if (version === null) refuseUnknownFields(dir);
  if (inv.preDumpMode) {
    throw new StasisError('E_NO_IMAGE', `Images in ${dir} are a pre-dump (memory only): restore from the dump made after it`);
  }
  const { files, regTwins } = indexFiles(readImage(dir, 'files', undefined));
  if (version === null) markHiddenSocketFiles(dir, files);
  // Before format 11 stasis kept a socket filter's instructions as the struct's bytes: read as CRIU's layout.
  if (version !== null && version <= OWN_FILTERS_UNTIL_FORMAT) {
    for (const f of files.values()) {
      const o = f.isk?.opts ?? f.usk?.opts ?? f.psk?.opts ?? f.nlsk?.opts;
      if (o?.soFilter.length) o.soFilter = o.soFilter.map((w) => encodeFilterInsn(structBytes(w)));
    }
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
    // A zombie is told by its core's state (CRIU lists one thread for it, whose id means
    // nothing; images of stasis before format 5 list none).
    // Read once: a single-thread task's core is its leader's, handed on to readTask.
    const core = e.threads.length <= 1 ? one(readImage(dir, 'core', e.pid), `core-${e.pid}.img`) : undefined;
    if (core?.tc?.taskState === TASK_DEAD) {
      if (e === tree[0]) throw new StasisError('E_CORRUPT', 'The root task of the image is a zombie');
      zombies.push({ pstree: e, status: core.tc.exitCode, ...(core.threadCore?.creds ? { creds: core.threadCore.creds } : {}) });
      continue;
    }
    if (!e.threads.length) throw new StasisError('E_CORRUPT', `Pid ${e.pid} has no threads and is not a zombie`);
    tasks.push(readTask(dir, e, files, core));
  }
  const shmem = readShmem(dir, tasks.map((t) => t.mm), files, version === null);
  const seccomp = imageExists(dir, 'seccomp', undefined) ? one(readImage(dir, 'seccomp', undefined), 'seccomp.img') : undefined;
  // Every chain checked now, before a task exists.
  for (const t of tasks) {
    for (const c of [t.core, ...t.threads.map((x) => x.core)]) {
      if (c.threadCore?.seccompMode === SeccompMode.filter) seccompChain(seccomp, c.threadCore.seccompFilter ?? -1, t.pstree.pid);
    }
  }
  return { dir, inventory: inv, files, regTwins, order: tree, tasks, zombies, shmem, ...(seccomp ? { seccomp } : {}) };
}

function readTask(dir: string, pstree: PstreeEntry, files: Map<number, FileEntry>, leaderCore?: CoreEntry): TaskImages {
  const pid = pstree.pid;
  const core = leaderCore ?? one(readImage(dir, 'core', pid), `core-${pid}.img`);
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
  // The vDSO's pages (CRIU writes them) stay unread: the kernel maps the vDSO.
  const pages = resolveTaskPages(dir, pid, mm.vmas.filter((v) => !isMappedByRestore(v)));

  const need = (id: number, what: string) => {
    const f = files.get(id);
    if (!f) throw new StasisError('E_CORRUPT', `${what} of pid ${pid} names file ${id}, which files.img lacks`);
    return f;
  };
  need(mm.exeFileId, 'The exe');
  need(fsEntry.cwdId, 'The cwd');
  need(fsEntry.rootId, 'The root');
  for (const d of fdinfos) need(d.id, `Fd ${d.fd}`);
  // Shared anonymous memory mapped private names its object, not a file.
  for (const v of mm.vmas) if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED) && !(v.status & VMA.ANON_SHARED)) need(Number(v.shmid), `The mapping at 0x${v.start.toString(16)}`);
  return { pstree, core, threads, ids, mm, fs: fsEntry, fdinfos, runs: pages.runs, pageSources: pages.sources };
}

/** Path of a regular-file entry (exe, cwd, mapped file). */
export function regPath(set: ImageSet, id: number): string {
  const r = set.files.get(id)?.reg;
  if (!r) throw new StasisError('E_CORRUPT', `File ${id} is not a regular file`);
  return r.name;
}

/** A filter instruction as stasis kept it before format 11: struct sock_filter's 8 bytes, little-endian. */
function structBytes(w: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, w));
  return b;
}
