// Incremental dumps, as CRIU does them: `--prev-images-dir` names the previous image set
// (relative to the images dir, as CRIU takes it), a `parent` symlink in the new set points
// there, and pages unchanged since are in_parent entries. What changed comes from a
// dirty-tracking backend (src/mem/dirty*.ts) whose state the previous run recorded.
//
// Order matters: a pre-dump re-arms tracking atomically while the tree is frozen and reads
// pages after it runs again, so a page written meanwhile is both read and marked written.
// A dump keeps the tree frozen to the end and re-arms only once everything is written: a
// dump that fails leaves the previous run's tracking as it was. A pre-dump that fails after
// re-arming has lost the writes since its parent: it stops that tracking, and the next
// dump from that parent is a full one.
import fs from 'node:fs';
import path from 'node:path';
import { readImage, imageExists, pagemapCount } from '../image/index.js';
import type { InventoryEntry } from '../image/gen/stasis/inventory_pb.js';
import type { KernelFeatures, InjectorOptions } from '../sys/index.js';
import { PageRanges } from '../mem/page-ranges.js';
import { hasDumpablePages, type VmaSpec } from '../mem/vma.js';
import type { PageDumperOptions } from '../mem/dump-pages.js';
import { readTrackFile, writeTrackFile, taskStart, type DirtyBackendChoice, type DirtyTracker, type TaskTrack, type TrackFile } from '../mem/dirty.js';
import { backendProblems, chooseBackend, openTracker } from '../mem/dirty-open.js';
import { hashFileName } from '../mem/dirty-hash.js';
import { StasisError } from '../errors.js';
import { freezeTree, type TreeTask } from './freeze-tree.js';
import { freezeTreeInCgroup } from './freeze-cgroup.js';
import type { Log } from '../log.js';

const PARENT_LINK = 'parent';
const CLK_TCK = 100; // USER_HZ: /proc/PID/stat starttime unit on every Linux ABI

export interface IncrementalOptions {
  imagesDir: string;
  prevImagesDir?: string | undefined;
  /** Track memory after this run (a pre-dump always does). */
  track: boolean;
  backend: DirtyBackendChoice;
  kernel: KernelFeatures;
  preDump: boolean;
  /** How syscalls are injected (userfaultfd() for the uffd backend). */
  inject?: InjectorOptions | undefined;
}

interface TaskState {
  pid: number;
  tracker: DirtyTracker | null;
  armed: boolean;
  rearmed: boolean;
  consumed: TaskTrack | null;
  vmas: VmaSpec[];
}

export class Incremental {
  private readonly tasks: TaskState[] = [];
  private backendUsed: string | null = null;
  private committed = false;

  private constructor(
    private readonly o: IncrementalOptions,
    readonly parentDir: string | null,
    private readonly parentInv: InventoryEntry | null,
    private readonly parentTrack: TrackFile | null,
  ) {}

  /** Checks the previous image set and links it as `parent`; no-op options give a plain dump. */
  static open(o: IncrementalOptions): Incremental {
    if (!o.prevImagesDir) return new Incremental(o, null, null, null);
    const dir = path.resolve(o.imagesDir, o.prevImagesDir);
    if (!fs.existsSync(dir)) throw new StasisError('E_NO_IMAGE', `No previous images directory ${dir} (--prev-images-dir ${o.prevImagesDir}, relative to ${o.imagesDir})`);
    if (path.resolve(dir) === path.resolve(o.imagesDir)) throw new StasisError('E_BAD_ARGS', `The previous images directory ${dir} is the images directory itself`);
    if (!imageExists(dir, 'inventory', undefined)) throw new StasisError('E_NO_IMAGE', `No inventory.img in ${dir}: not a complete pre-dump or dump`);
    const inv = readImage(dir, 'inventory', undefined)[0] ?? null;
    const link = path.join(o.imagesDir, PARENT_LINK);
    fs.rmSync(link, { force: true });
    fs.symlinkSync(o.prevImagesDir, link);
    return new Incremental(o, dir, inv, readTrackFile(dir));
  }

  get backend(): string | null {
    return this.backendUsed;
  }

  /** The pages the parent set has for `pid`; null when it has none or the pid was reused since. */
  private parentPages(pid: number, start: string): PageRanges | null {
    const dir = this.parentDir;
    if (!dir || !imageExists(dir, 'pagemap', pid)) return null;
    // CRIU's detect_pid_reuse: a task started after the parent dump is not the one dumped there.
    const up = this.parentInv?.dumpUptime;
    if (up !== undefined && up > 0n && (BigInt(start) * 1000000n) / BigInt(CLK_TCK) > up) return null;
    const r = new PageRanges();
    const entries = [...readImage(dir, 'pagemap', pid).entries].sort((a, b) => (a.vaddr < b.vaddr ? -1 : a.vaddr > b.vaddr ? 1 : 0));
    for (const e of entries) r.addBytes(e.vaddr, e.vaddr + BigInt(pagemapCount(e)) * 4096n);
    return r;
  }

  /**
   * While `pid` is frozen: how to dump its pages. `imagePid` names its images (the pid it has
   * in its own pid namespace, the parent set's pagemap among them).
   */
  forTask(pid: number, vmas: VmaSpec[], imagePid = pid): Pick<PageDumperOptions, 'incremental' | 'onPage'> {
    const start = taskStart(pid);
    if (start === null) throw new StasisError('E_NO_PROCESS', `Pid ${pid} vanished while being dumped`);
    const parent = this.parentPages(imagePid, start);
    const rec = (parent && this.parentTrack?.tasks.find((t) => t.pid === pid)) || null;
    // Not tracking on: only the parent's tracking is read, when this kernel can read it.
    const backend = this.o.track ? chooseBackend(this.o.kernel, this.o.backend, rec?.backend ?? null)
      : rec && !backendProblems(this.o.kernel)[rec.backend] ? rec.backend : null;
    if (!backend) return parent ? { incremental: { parent, written: null } } : {};
    this.backendUsed = backend;
    const tracker = openTracker(backend, pid, start, rec, this.parentDir, this.o.inject);
    const st: TaskState = { pid, tracker, armed: false, rearmed: false, consumed: rec, vmas };
    this.tasks.push(st);
    const task = { pid, start, vmas };
    const info = parent ? tracker.changes(task, this.o.preDump) : { written: null };
    st.rearmed = parent !== null && this.o.preDump;
    // Arm now when pages are read after the tree runs again (pre-dump), or when arming only
    // records what is read (hash); otherwise at commit(), once the dump cannot fail any more.
    if (this.o.track && (this.o.preDump || backend === 'hash')) {
      tracker.arm(task);
      st.armed = true;
    }
    return {
      ...(parent ? { incremental: { parent, written: info.written, hashes: info.hashes } } : {}),
      onPage: tracker.onPage,
    };
  }

  /**
   * Everything is written. `keepTracking`: the tree lives on and the next run may start
   * from this set; otherwise tracking ends here.
   */
  commit(keepTracking: boolean): void {
    const records: TaskTrack[] = [];
    for (const t of this.tasks) {
      if (!t.tracker) continue;
      if (keepTracking && this.o.track && fs.existsSync(`/proc/${t.pid}`)) {
        if (!t.armed) t.tracker.arm({ pid: t.pid, start: taskStart(t.pid) ?? '', vmas: t.vmas });
        records.push(t.tracker.commit(this.o.imagesDir));
        t.tracker.release();
      } else {
        t.tracker.stop();
      }
    }
    writeTrackFile(this.o.imagesDir, records);
    this.committed = true;
    this.forgetConsumed();
  }

  /** The run failed: tracking the parent set describes stays usable, unless it was re-armed. */
  abort(): void {
    for (const t of this.tasks) {
      if (!t.tracker) continue;
      // Committed: the record is in a set about to be removed; re-armed: the parent's is stale.
      if ((this.committed || t.rearmed) && t.tracker.backend !== 'hash') t.tracker.stop();
      else t.tracker.release();
    }
    if (this.committed) {
      writeTrackFile(this.o.imagesDir, []);
      for (const t of this.tasks) fs.rmSync(path.join(this.o.imagesDir, hashFileName(t.pid)), { force: true });
    }
    if (this.tasks.some((t) => t.rearmed)) this.forgetConsumed((t) => t.rearmed);
    fs.rmSync(path.join(this.o.imagesDir, PARENT_LINK), { force: true });
  }

  /** The parent's records this run used up (hash records stay: contents do not go stale). */
  private forgetConsumed(which: (t: TaskState) => boolean = () => true): void {
    if (!this.parentDir || !this.parentTrack) return;
    const gone = new Set(this.tasks.filter((t) => t.consumed && t.consumed.backend !== 'hash' && which(t)).map((t) => t.pid));
    if (gone.size === 0) return;
    writeTrackFile(this.parentDir, this.parentTrack.tasks.filter((r) => !gone.has(r.pid)));
  }
}

/** Pages a task may hold data in: what a full dump would scan. */
export function scannablePages(vmas: VmaSpec[]): number {
  return vmas.filter(hasDumpablePages).reduce((m, v) => m + Number((v.end - v.start) / 4096n), 0);
}

/** The backend a pre-dump would track memory with here, and why the others cannot. */
export function trackingReport(k: KernelFeatures): { backend: string; unavailable: Record<string, string> } {
  const problems = backendProblems(k);
  const unavailable: Record<string, string> = {};
  for (const [name, p] of Object.entries(problems)) if (p) unavailable[name] = p;
  return { backend: chooseBackend(k, 'auto', null), unavailable };
}

/**
 * Freezes the tree, through cgroup `freezeCgroup` when one is named (freeze-cgroup.ts); a
 * freeze that fails gives back what `inc` prepared (the parent link).
 */
export function freezeTracked(pid: number, inc: Incremental, freezeCgroup?: { dir: string; log: Log }): TreeTask[] {
  try {
    return freezeCgroup ? freezeTreeInCgroup(pid, freezeCgroup.dir, freezeCgroup.log) : freezeTree(pid);
  } catch (e) {
    inc.abort();
    throw e;
  }
}
