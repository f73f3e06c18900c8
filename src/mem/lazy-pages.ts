// restore --lazy-pages: a task's private anonymous areas whose pages are in the image are
// not filled at restore. They are registered on a userfaultfd in MISSING mode instead, and
// the tree runs at once: a filler thread (lazy-filler.ts) puts each page in when it is first
// touched (UFFDIO_COPY from the pages file, UFFDIO_ZEROPAGE where the image has none), and
// fills the rest in address order meanwhile; when every page is in it closes the uffd, which
// unregisters the areas (userfaultfd_release), and the areas are as a normal restore leaves them.
//
// Exactness while the task runs: the uffd also asks for the non-cooperative events, so what
// the task does to its areas before they are full is followed: fork (EVENT_FORK: the child's
// areas come registered on a uffd of their own, filled the same way), mremap (EVENT_REMAP:
// the pages still to come move with the area), madvise(DONTNEED/REMOVE) and munmap
// (EVENT_REMOVE, EVENT_UNMAP: those pages are not filled any more, and read as zeroes).
// A kernel without one of them gets the restore refused.
//
// Like the incremental tracker (dirty-uffd.ts), only userfaultfd() runs in the task: its fd is
// taken into stasis with pidfd_getfd and closed in the task at once, so the task never sees
// it. It is made without UFFD_USER_MODE_ONLY: a fault the kernel takes on the task's behalf
// (read(2) into an area) must wait for its page too, not fail with EFAULT; this needs the
// privileges the task still has at that stage of its restore (stasis's).
import fs from 'node:fs';
import type { MessagePort, Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
// node:worker_threads when a thread is started, not at load: loading it costs every command about 3 ms.
// (Built-ins loaded on first use; the require made then: see koffi-addon.ts on the start-up snapshot.)
const threads = () => createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
import {
  Injector, setOwnNice, pidfdOpen, pidfdGetfd, closeFd, SyscallError, uffdApi, uffdRegisterMissing, userfaultfdOwn,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { VMA, MAP, MADV, PROT, isMappedByRestore, type VmaSpec } from './vma.js';
import type { PageSource } from './page-chain.js';
import { PageList, cutReads, pageCuts } from './page-list.js';
import { doubled, orderBy, permuted } from '../float-arrays.js';
import { SUM_CHUNK } from '../image/sum-compare.js';
import { QUIET } from '../image/sum-check.js';
import { InterimServer, chunkSumMatches, OWNER_NONE, OWNER_RESTORE, OWNER_FILLER, type Forwarded } from './lazy-interim.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
export const LAZY_FEATURES = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;

/** Pages still to come: `n` pages at page number `start` of the task, from `off` of file `file`. */
export interface LazyPiece {
  start: number;
  n: number;
  file: number;
  off: number;
}

/**
 * A task whose areas wait on a uffd (stasis's fd `uffd`), and its pieces: start, n, file,
 * off (LazyPiece's fields), four numbers each, by address (thousands of them: as objects,
 * made and copied to the filler, they took 4-6 ms of the restore's thread).
 */
export interface LazyTask {
  pid: number;
  uffd: number;
  pieces: Float64Array;
}

/**
 * A pages file's CRC-32s per chunk (sums version 3, by real path), with which chunks were
 * read and found right (`ok`, 1 each) and the chunks the filler will want next (`hints`,
 * HINTS slots, -1 for none): shared by the filler and the restore's thread, which checks
 * them ahead of it once the tree runs (LazyFiller.checkAhead).
 */
export interface ChunkSums {
  file: string;
  size: number;
  chunks: string;
  ok: Uint8Array;
  hints: Int32Array;
}

export const HINTS = 8, HINT_AHEAD = 4;

/** To the filler: the pages files it checks chunk by chunk (by real path), a task armed (with every pages file named so far), the tree runs, or the restore failed. */
export type FillerMessage =
  | { kind: 'chunks'; sums: ChunkSums[] }
  | { kind: 'task'; task: LazyTask; files: string[] }
  | { kind: 'run' }
  | { kind: 'events'; list: Forwarded[] }
  | { kind: 'abort' };

/** Why this kernel cannot restore lazily, or null where it can (a uffd of stasis's own, asked for the features). */
export function lazyPagesUnavailable(): string | null {
  const fd = userfaultfdOwn();
  if (fd < 0) return `userfaultfd() fails with errno ${-fd}`;
  try {
    const got = uffdApi(fd, LAZY_FEATURES);
    if ((got & LAZY_FEATURES) !== LAZY_FEATURES) return `the kernel's userfaultfd lacks the fork, remap, remove or unmap events (features 0x${got.toString(16)})`;
    return null;
  } catch (e) {
    return `UFFDIO_API fails: ${(e as Error).message}`;
  } finally {
    closeFd(fd);
  }
}

/**
 * Whether an area is filled lazily: private anonymous, writable, mapped by restore and not
 * moved in from a premap (those share pages with another task), not locked (mlock fills it
 * at once: it would not fault), not droppable, not a stack (grows), not WIPEONFORK (a fork
 * would hand the child an empty area that the child's filler would fill), no guard region.
 */
export function fillsLazily(v: VmaSpec, guards: { start: bigint; end: bigint }[]): boolean {
  if (!isMappedByRestore(v) || !(v.status & VMA.ANON_PRIVATE) || (v.flags & 0x0f) !== MAP.PRIVATE) return false;
  if (v.flags & (MAP.LOCKED | MAP.DROPPABLE | MAP.GROWSDOWN)) return false;
  if (!(v.prot & PROT.WRITE) || !(v.prot & PROT.READ)) return false;
  if (v.madv & (1n << BigInt(MADV.WIPEONFORK))) return false;
  return !guards.some((g) => g.start < v.end && v.start < g.end);
}

/**
 * The reads of `sources` split at the lazy areas, in one pass: those outside them all (the
 * restore writes them at once), and those inside as the filler's pieces (files numbered
 * through `fileIndex`): start, n, file, off, four numbers each, by address.
 */
export function splitLazy(sources: PageSource[], areas: readonly { start: bigint; end: bigint }[], fileIndex: (path: string) => number): { outside: PageSource[]; pieces: Float64Array } {
  const cuts = pageCuts(areas);
  let out: Float64Array = new Float64Array(4 * sources.reduce((n, s) => n + s.reads.n + cuts.starts.length, 0)), k = 0, inOrder = true, file = 0;
  const piece = (a: number, b: number, off: number) => {
    if (k === out.length) out = doubled(out);
    if (k && a < out[k - 4]!) inOrder = false;
    out[k] = a;
    out[k + 1] = b - a;
    out[k + 2] = file;
    out[k + 3] = off;
    k += 4;
  };
  const outside = sources.map((src) => {
    file = fileIndex(src.path);
    const rest = new PageList();
    cutReads(src.reads, cuts, rest, piece);
    return { path: src.path, reads: rest.done() };
  });
  out = out.subarray(0, k);
  return { outside, pieces: inOrder ? out : permuted(out, orderBy(out, k / 4, 4), 4) };
}

/** `areas` (not overlapping) less `out`: what is left of each, in address order. */
export function rangesLess(areas: readonly { start: bigint; end: bigint }[], out: readonly { start: bigint; end: bigint }[]): { start: bigint; end: bigint }[] {
  const cut = [...out].sort((a, b) => (a.start < b.start ? -1 : 1));
  const left: { start: bigint; end: bigint }[] = [];
  for (const a of [...areas].sort((x, y) => (x.start < y.start ? -1 : 1))) {
    let at = a.start;
    for (const c of cut) {
      if (c.end <= at || c.start >= a.end) continue;
      if (c.start > at) left.push({ start: at, end: c.start });
      at = c.end > at ? c.end : at;
    }
    if (at < a.end) left.push({ start: at, end: a.end });
  }
  return left;
}

/**
 * The task's userfaultfd (injected, taken, closed in the task), with the areas registered in
 * MISSING mode. Any area the kernel will not register fails the restore: its pages were not
 * written, so it cannot be left as it is.
 */
export function armLazy(inj: Injector, areas: VmaSpec[]): number {
  const pid = inj.pid;
  let uffd = -1, remote = -1;
  try {
    const r = inj.call('userfaultfd', O_CLOEXEC | O_NONBLOCK);
    if (r < 0n) throw new SyscallError('userfaultfd', Number(-r), `injected in pid ${pid}`);
    remote = Number(r);
    const pidfd = pidfdOpen(pid);
    try {
      uffd = pidfdGetfd(pidfd, remote);
    } finally {
      closeFd(pidfd);
    }
  } finally {
    if (remote >= 0) inj.call('close', remote);
  }
  try {
    const got = uffdApi(uffd, LAZY_FEATURES);
    if ((got & LAZY_FEATURES) !== LAZY_FEATURES) throw new StasisError('E_UNSUPPORTED', `Cannot restore pid ${pid} with --lazy-pages: its userfaultfd lacks the events it needs`);
    for (const v of areas) {
      const e = uffdRegisterMissing(uffd, v.start, v.end - v.start);
      if (e < 0) throw new StasisError('E_UNSUPPORTED', `Cannot restore pid ${pid} with --lazy-pages: the area 0x${v.start.toString(16)}-0x${v.end.toString(16)} cannot be registered on a userfaultfd (errno ${-e})`);
    }
  } catch (err) {
    closeFd(uffd);
    throw err;
  }
  return uffd;
}

let spare: LazyFiller | null = null;
let keepSpare = false;

/**
 * For a resident stasis (`stasis service`): a filler thread is started now and after each lazy
 * restore, so that the next one finds it loaded. It waits idle (a futex) until then.
 */
export function keepFillerReady(): void {
  keepSpare = true;
  LazyFiller.prepareNext();
}

/** The filler's script: the CommonJS bundle beside the CLI's where there is one (a thread loads it in 35-40 ms here, the ES module in 45-50), else the module. */
function fillerScript(): URL {
  const cjs = new URL('./lazy-filler.cjs', import.meta.url);
  return fs.existsSync(cjs) ? cjs : new URL('./lazy-filler.js', import.meta.url);
}

/**
 * The filler thread, started before the tree is made (its start-up is not paid by the first
 * fault). Each task is handed to it as soon as it is armed: the rest of its restore (rseq's
 * registration, the threads' set-up) may touch its areas. `run()` starts the background pass.
 */
export class LazyFiller {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  /** [0]: 1 once the filler is done; [1]: 1 if it failed; [2..5]: faults, zero pages, pages copied, events; [6]: length of the error at byte 64; [7]: 1 once it is loaded. */
  private readonly shared = new SharedArrayBuffer(1024);
  private readonly state = new Int32Array(this.shared, 0, 8);
  /** 0 until this filler is first told something: the thread waits on it once loaded (a spare filler stays idle). */
  private readonly wake = new Int32Array(this.shared, 32, 1);
  private failure: string | null = null;
  private readonly sums: ChunkSums[] = [];
  /** From the tree's start, how long the filler thread took to load (while the restore's thread served the faults). */
  waitedMs = 0;
  /** Faults served by the restore's thread meanwhile. */
  private served = 0;
  /** Which thread reads the uffds (lazy-interim.ts): OWNER_NONE until one does. */
  private readonly owner = new Int32Array(this.shared, 36, 1);
  private readonly armedTasks: LazyTask[] = [];
  private files: string[] = [];
  private exited = false;
  private tasks = 0;
  private ended = false;

  constructor() {
    const { port1, port2 } = new (threads().MessageChannel)();
    this.port = port1;
    this.worker = new (threads().Worker)(fillerScript(), { workerData: { state: this.shared, port: port2 }, transferList: [port2], ...QUIET });
    this.worker.unref();
    this.worker.on('error', (e) => {
      this.failure = e.message;
    });
    this.worker.on('exit', () => {
      this.exited = true;
    });
  }

  /** Whether its thread has loaded (a spare taken has, unless it was taken at once). */
  get loaded(): boolean {
    return Atomics.load(this.state, 7) === 1;
  }

  /** A spare that may still be used: not told anything yet, and its thread alive. */
  private get fresh(): boolean {
    return Atomics.load(this.wake, 0) === 0 && this.failure === null && !this.exited;
  }

  private post(m: FillerMessage, transfer: ArrayBuffer[] = []): void {
    this.port.postMessage(m, transfer);
    if (Atomics.exchange(this.wake, 0, 1) === 0) Atomics.notify(this.wake, 0);
  }

  /**
   * The filler for a lazy restore: in a resident stasis (keepFillerReady()), the one started
   * after the last restore, loaded by now (its start-up, 40-60 ms of a thread's bootstrap here,
   * was what the first armed task waited for); else a new one.
   */
  static take(): LazyFiller {
    const f = spare;
    spare = null;
    if (f?.fresh) return f;
    f?.abort();
    return new LazyFiller();
  }

  /** A lazy restore ended: a resident stasis starts the next one's filler (it loads and waits). */
  static prepareNext(): void {
    if (keepSpare && !spare) spare = new LazyFiller();
  }

  /**
   * A task armed (its uffd now belongs to the filler), with the pages files named so far. Not
   * waited for: a fault before the filler has loaded waits for it, and once the tree runs the
   * restore's thread serves them until it has (serveUntilLoaded()).
   */
  add(task: LazyTask, files: string[]): void {
    this.tasks++;
    this.armedTasks.push(task);
    this.files = files;
    // Copied (the restore's thread serves from them until the filler has loaded): 32 bytes a piece.
    this.post({ kind: 'task', task, files });
  }

  /**
   * The tree runs: until the filler thread has loaded, the restore's thread answers the
   * tasks' faults (lazy-interim.ts), then hands the uffds over, with what it read and left.
   * A filler that does not load within 10 s fails the restore (its caller kills the tree).
   */
  serveUntilLoaded(): void {
    if (this.tasks === 0) return;
    const t = performance.now(), until = Date.now() + 10000;
    if (Atomics.compareExchange(this.owner, 0, OWNER_NONE, OWNER_RESTORE) === OWNER_NONE) {
      const byPath = new Map(this.sums.map((c) => [c.file, c]));
      const server = new InterimServer(this.armedTasks, this.files, (f) => byPath.get(fs.realpathSync(f)));
      try {
        server.serve(() => this.loaded, until);
      } finally {
        if (server.forwarded.length) this.post({ kind: 'events', list: server.forwarded });
        this.served = server.served;
        // After the post: the filler reads the uffds only once it sees this, and so sees those first.
        Atomics.store(this.owner, 0, OWNER_FILLER);
        Atomics.notify(this.owner, 0);
      }
    }
    while (!this.loaded && Date.now() < until) Atomics.wait(this.state, 7, 0, 20);
    this.waitedMs = performance.now() - t;
    if (!this.loaded) throw new StasisError('E_RESTORE_FAILED', `The lazy page filler thread did not start${this.failure ? `: ${this.failure}` : ''}`);
  }

  /** Whether any task waits on the filler. */
  get armed(): boolean {
    return this.tasks > 0;
  }

  /**
   * Pages files whose CRC-32s per chunk (sums version 3) the filler checks, each chunk before
   * a byte of it goes into a task; before the first task. The tree can run at once on them.
   */
  checkChunks(sums: { file: string; size: number; chunks: string }[]): void {
    for (const s of sums) {
      const ok = new Uint8Array(new SharedArrayBuffer(Math.ceil(s.size / SUM_CHUNK)));
      this.sums.push({ ...s, file: fs.realpathSync(s.file), ok, hints: new Int32Array(new SharedArrayBuffer(4 * HINTS)).fill(-1) });
    }
    this.post({ kind: 'chunks', sums: this.sums });
  }

  /**
   * Once the tree runs, the restore's thread has nothing to do but wait for the filler: it
   * checks the pages files' chunks ahead of it meanwhile (those the filler hinted it will
   * want next first, else in order), so that the filler only reads their flags. At nice -10,
   * as the filler, where stasis may: the restored tasks would take the CPU from it otherwise.
   * Returns once every chunk is checked, one failed (left for the filler, which fails on it
   * naming its bytes), or the filler is done. A thread of its own was started for this
   * before: its start-up took the CPU from the restore while the tree was being made.
   */
  checkAhead(): void {
    if (this.sums.length === 0 || this.tasks === 0) return;
    const nice = setOwnNice(-10);
    const buf = Buffer.allocUnsafe(SUM_CHUNK);
    try {
      for (const c of this.sums) {
        const last = Math.ceil(c.size / SUM_CHUNK);
        const fd = fs.openSync(c.file, 'r');
        try {
          for (let cursor = 0; Atomics.load(this.state, 0) === 0; ) {
            let k = -1;
            for (let s = 0; s < HINTS && k < 0; s++) {
              const h = Atomics.load(c.hints, s);
              for (let j = h; h >= 0 && j < h + HINT_AHEAD && j < last; j++) if (!Atomics.load(c.ok, j)) { k = j; break; }
            }
            if (k < 0) {
              while (cursor < last && Atomics.load(c.ok, cursor)) cursor++;
              k = cursor;
            }
            if (k >= last) break;
            const n = Math.min(SUM_CHUNK, c.size - k * SUM_CHUNK);
            if (fs.readSync(fd, buf, 0, n, k * SUM_CHUNK) !== n) break;
            if (!chunkSumMatches(c, k, buf.subarray(0, n))) break;
            Atomics.store(c.ok, k, 1);
          }
        } finally {
          fs.closeSync(fd);
        }
      }
    } finally {
      setOwnNice(nice);
    }
  }

  /** The tree runs: fill the rest. */
  run(): void {
    this.post({ kind: 'run' });
  }

  /** What the filler did: faults served (`early`: by the restore's thread, before the filler had loaded), zero pages, pages copied (by the filler), events read. */
  stats(): { faults: number; zero: number; copied: number; events: number; early: number } {
    const s = this.state;
    return { faults: s[2]! + this.served, zero: s[3]!, copied: s[4]!, events: s[5]! + this.served, early: this.served };
  }

  /** Blocks until every page is in (or the tasks are gone); the filler's error, if it had one. */
  waitDone(): string | null {
    this.ended = true;
    if (this.tasks === 0) {
      this.abort();
      return null;
    }
    while (Atomics.load(this.state, 0) === 0) Atomics.wait(this.state, 0, 0, 1000);
    this.port.close();
    if (!Atomics.load(this.state, 1)) return null;
    const len = Atomics.load(this.state, 6);
    return this.failure ?? (Buffer.from(new Uint8Array(this.shared, 64, len)).toString() || 'the page filler failed');
  }

  /**
   * Why the filler stopped, if it did on its own within `waitMs` (a restore that failed while
   * the filler was serving faults: the filler may have killed the tree, which is the cause).
   */
  stoppedWith(waitMs: number): string | null {
    if (this.tasks === 0) return null;
    Atomics.wait(this.state, 0, 0, waitMs);
    if (!Atomics.load(this.state, 0) || !Atomics.load(this.state, 1)) return null;
    return this.failure ?? (Buffer.from(new Uint8Array(this.shared, 64, Atomics.load(this.state, 6))).toString() || null);
  }

  /**
   * The restore failed (its tasks are killed): the filler closes the uffds and ends. One that
   * has not loaded (it never read them) is ended instead, and they are closed here once its
   * thread is gone: a resident stasis would keep them open otherwise. Where it loaded
   * meanwhile, they are its to close (its fd numbers may be taken again by then).
   */
  abort(): void {
    this.post({ kind: 'abort' });
    this.port.close();
    if (this.tasks === 0) void this.worker.terminate();
    else if (!this.loaded) {
      void this.worker.terminate().then(() => {
        if (!this.loaded) for (const t of this.armedTasks) closeFd(t.uffd);
      });
    }
  }
}
