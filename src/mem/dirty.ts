// Dirty-page tracking between dumps, behind one interface with three backends, chosen by
// probing (dirty-uffd.ts, dirty-soft.ts, dirty-hash.ts). A pre-dump and the dump after it
// are separate stasis runs, so what a backend needs later is recorded in the pre-dump's
// image dir (stasis-track.json; CRIU ignores files it does not know) and picked up by the
// next run through --prev-images-dir.
//
// Per private address space for now. Shared memory objects (memfd, MAP_SHARED|MAP_ANONYMOUS)
// will need a dirty set per object, keyed by the object and page offset, beside these: the
// interface is per "thing with pages", and a shmem object would get a DirtyTracker of its
// own whose pages are all written unless a backend proves otherwise (a write through a
// mapping unmapped before the dump leaves no trace in any task's page tables).
import fs from 'node:fs';
import path from 'node:path';
import type { PageRanges } from './page-ranges.js';
import type { PageHashes } from './dirty-hash.js';
import type { VmaSpec } from './vma.js';
import { StasisError } from '../errors.js';
import { writePrivateFile } from '../image/image-modes.js';

export type DirtyBackendName = 'uffd' | 'soft-dirty' | 'hash';
export type DirtyBackendChoice = DirtyBackendName | 'auto';

export const TRACK_FILE = 'stasis-track.json';

/** One task's tracking, as recorded in an image dir. Changing it changes what older runs can read. */
export interface TaskTrack {
  pid: number;
  /** starttime from /proc/PID/stat: a pid reused by another task is not the task tracked. */
  start: string;
  backend: DirtyBackendName;
  /** uffd: the process that holds the userfaultfd, and the fd number there. */
  tracker?: { pid: number; start: string; fd: number };
  /** uffd: the page ranges registered with it, [start, end) page numbers. */
  ranges?: [number, number][];
  /** hash: the file (in the same dir) with the hash of every page of the image. */
  hashes?: string;
}

export interface TrackFile {
  version: 1;
  tasks: TaskTrack[];
}

/** A frozen task as the backends see it. */
export interface TrackedTask {
  pid: number;
  start: string;
  /** Every VMA of the task. */
  vmas: VmaSpec[];
}

/** What a backend knows about a task's pages since the parent dump. */
export interface DirtyInfo {
  /** Pages written since; null when unknown (then every page counts as written) or decided by content. */
  written: PageRanges | null;
  /** The parent's page hashes: pages are compared by content (hash backend). */
  hashes?: PageHashes;
}

export interface DirtyTracker {
  readonly backend: DirtyBackendName;
  /**
   * While the task is frozen: what changed since the record this tracker was opened from.
   * With `rearm` the backend starts the next interval atomically (pre-dump: the task runs on).
   */
  changes(task: TrackedTask, rearm: boolean): DirtyInfo;
  /** While frozen: track every page from now on (new mappings included). */
  arm(task: TrackedTask): void;
  /** Sees the hash (hashPage()'s two halves at hash[at] and hash[at + 1]) of every page the dump reads (the hash backend records them). */
  onPage?: ((pageNo: number, hash: Uint32Array, at: number) => void) | undefined;
  /** After the images are written: saves what the next run needs in `dir`, returns the record. */
  commit(dir: string): TaskTrack;
  /** Ends tracking for good: no process, fd or write-protection is left behind. */
  stop(): void;
  /** Lets go of what this run holds; tracking carries on without it. */
  release(): void;
}

export function readTrackFile(dir: string): TrackFile | null {
  const f = path.join(dir, TRACK_FILE);
  if (!fs.existsSync(f)) return null;
  let t: TrackFile;
  try {
    t = JSON.parse(fs.readFileSync(f, 'utf8')) as TrackFile;
  } catch (e) {
    throw new StasisError('E_CORRUPT', `${f} is not valid JSON: ${(e as Error).message}`);
  }
  if (t.version !== 1 || !Array.isArray(t.tasks)) throw new StasisError('E_CORRUPT', `${f} has version ${String(t.version)}, expected 1`);
  return t;
}

export function writeTrackFile(dir: string, tasks: TaskTrack[]): void {
  const f = path.join(dir, TRACK_FILE);
  if (tasks.length === 0) {
    fs.rmSync(f, { force: true });
    return;
  }
  writePrivateFile(`${f}.tmp`, JSON.stringify({ version: 1, tasks } satisfies TrackFile, null, 1));
  fs.renameSync(`${f}.tmp`, f);
}

/** starttime of a task, in clock ticks since boot; null if it is gone. */
export function taskStart(pid: number): string | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
