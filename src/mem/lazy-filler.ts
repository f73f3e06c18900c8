// The page filler of restore --lazy-pages (lazy-pages.ts), a worker_thread so that no fault
// waits on JavaScript the restore's own thread is busy with (restoreSync blocks it in
// waitpid). One loop: first every event of every uffd (faults are served at once, a batch
// around the page), then one chunk of the background pass (at most CHUNK_PAGES, so a fault
// waits at most one chunk), in address order, task after task. A page is put in once: each
// piece keeps which of its pages are done. When no page is left to come, the uffds are
// closed (which unregisters the areas) and the thread ends.
import fs from 'node:fs';
import { workerData, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
// Not through sys/index.js: this thread loads only the syscalls it makes (start-up, issue 15).
import { addressOf, syscallRaw } from '../sys/libc.js';
import { closeFd, kill } from '../sys/process.js';
import { UffdFill, uffdWake, UFFD_EVENT, UFFD_MSG_SIZE } from '../sys/uffd.js';
import type { ChunkSums, LazyPiece, LazyTask, FillerMessage } from './lazy-pages.js';
import { SUM_CHUNK } from '../image/sum-compare.js';
import { setOwnNice } from '../sys/sched.js';
import { chunkSumMatches, pieceIndexAfter, OWNER_NONE, OWNER_RESTORE, OWNER_FILLER } from './lazy-interim.js';
import { sleepSync } from '../sys/sleep.js';

const PAGE = 4096;
const FAULT_PAGES = 128; // 512 KiB from a fault on (the faulting thread is woken once they are in)
const AHEAD_PAGES = 1024; // up to 4 MiB after faults one after another in an area (read-ahead)
const CHUNK_PAGES = 512; // 2 MiB per background step
// A sequential reader's read-ahead also zero-fills the holes it meets (pages in no piece, the
// image has none) up to this long: it would fault on each of them, one round trip a page.
const MAX_GAP = 64;
const STREAMS = 64; // read-ahead streams followed per task
// The pages file is read through windows mapped 8 MiB at a time, a few at once (the background
// pass and threads faulting in several areas each have theirs): no copy into a buffer first,
// and at most WINDOWS * WINDOW of it mapped, whatever its size.
const WINDOW = 8 << 20;
const WINDOWS = 8;
const EAGAIN = 11, EEXIST = 17, ENOENT = 2, ESRCH = 3;
const PROT_READ = 1, MAP_PRIVATE = 2, MAP_POPULATE = 0x8000;

interface Piece extends LazyPiece {
  done: Uint8Array;
  /** Pages done, for the background pass to skip a full piece. */
  left: number;
  /** The background pass: every page before this one is done (a fault may have done later ones). */
  next: number;
}

class TaskFill {
  cursor = 0; // the background pass: index of the piece it is at
  gone = false;
  /** Where a fault's read-ahead ended, and how many pages it took: a fault there is a sequential reader's, and gets twice as much. */
  readonly streams = new Map<number, number>();
  constructor(readonly uffd: number, readonly pid: number, public pieces: Piece[]) {}

  /** The index of the first piece that ends after `page`. */
  indexAfter(page: number): number {
    return pieceIndexAfter(this.pieces.length, (i) => this.pieces[i]!.start + this.pieces[i]!.n, page);
  }

  /** Whether `page` is one of the image's and is in. */
  filled(page: number): boolean {
    const p = this.pieces[this.indexAfter(page)];
    return !!p && p.start <= page && p.done[page - p.start] === 1;
  }

  stream(end: number, len: number): void {
    if (this.streams.size >= STREAMS) this.streams.delete(this.streams.keys().next().value!);
    this.streams.set(end, len);
  }

  /** Pages [s, e) will not be filled: removed or unmapped by the task. */
  drop(s: number, e: number): void {
    for (const p of this.pieces) {
      const a = Math.max(s, p.start), b = Math.min(e, p.start + p.n);
      for (let i = a; i < b; i++) markDone(p, i - p.start, 1);
    }
  }

  /** The area at [from, from+len) moved to `to` (mremap): its pages to come move with it. */
  remap(from: number, to: number, len: number): void {
    const out: Piece[] = [];
    for (const p of this.pieces) {
      const a = Math.max(from, p.start), b = Math.min(from + len, p.start + p.n);
      if (a >= b) {
        out.push(p);
        continue;
      }
      const part = (s: number, e: number, shift: number) => {
        if (s >= e) return;
        const done = p.done.subarray(s - p.start, e - p.start);
        out.push({ start: s + shift, n: e - s, file: p.file, off: p.off + (s - p.start) * PAGE, done, left: done.reduce((x, d) => x + (d ? 0 : 1), 0), next: 0 });
      };
      part(p.start, a, 0);
      part(a, b, to - from);
      part(b, p.start + p.n, 0);
    }
    this.pieces = out.sort((x, y) => x.start - y.start);
    this.cursor = 0;
    this.streams.clear();
  }

  clone(uffd: number): TaskFill {
    return new TaskFill(uffd, -1, this.pieces.map((p) => ({ ...p, done: p.done.slice() })));
  }
}

function markDone(p: Piece, i: number, n: number): void {
  for (let k = i; k < i + n; k++) {
    if (!p.done[k]) {
      p.done[k] = 1;
      p.left--;
    }
  }
}

/** A pages file's chunks to check (lazy-pages.ts's ChunkSums, shared with the restore's thread, which checks them ahead), and the slot of `hints` the next hint goes in. */
interface FileChunks extends ChunkSums {
  path: string;
  hint: number;
}

const CHUNK_OK = 1;

class Filler {
  private readonly fill = new UffdFill();
  /** The pages files restore left to the filler to check, chunk by chunk before a page of the chunk goes in (by real path). */
  private readonly toCheck = new Map<string, ChunkSums>();
  /** Per pages file (as fds): its chunks to check, or null (checked before the tree ran, or no sums). */
  private readonly checks: (FileChunks | null)[] = [];
  private readonly chunkBuf = Buffer.alloc(SUM_CHUNK);
  private readonly msgs = Buffer.alloc(UFFD_MSG_SIZE * 64);
  private readonly msgsAddr = addressOf(this.msgs);
  private readonly fds: number[] = [];
  /** The mapped windows of the pages files, most recently used last. */
  private windows: { file: number; off: number; len: number; addr: bigint }[] = [];
  private tasks: TaskFill[] = [];
  private readonly pollFds = Buffer.alloc(8 * 64);
  /** Faults that could not be served yet (the mm was changing): tried again after the events. */
  private retry: { t: TaskFill; page: number }[] = [];
  stats = { faults: 0, zero: 0, copied: 0, events: 0 };

  constructor(private readonly port: MessagePort) {}

  /**
   * Until `run`, the tasks are still being restored: their faults (an injected syscall that
   * touches an area, rseq's registration writing its struct) are served as they come, and the
   * tasks armed meanwhile are taken on. Then the background pass, faults first, to the end.
   */
  run(): void {
    let running = false;
    try {
      for (let mine = false; ; ) {
        // Before the messages: what the restore's thread read before it handed the uffds over is among them (lazy-interim.ts).
        mine ||= Atomics.compareExchange(owner, 0, OWNER_NONE, OWNER_FILLER) !== OWNER_RESTORE;
        for (let m; (m = receiveMessageOnPort(this.port)); ) {
          const msg = m.message as FillerMessage;
          if (msg.kind === 'task') this.add(msg.task, msg.files);
          else if (msg.kind === 'chunks') for (const c of msg.sums) this.toCheck.set(c.file, c);
          else if (msg.kind === 'run') running = true;
          else if (msg.kind === 'events') this.forwarded(msg.list);
          else return; // abort: the restore failed, its tasks are killed
        }
        if (!mine) {
          // The restore's thread serves the faults: nothing here touches the tasks (a copy
          // racing an event it read would land where the area was).
          Atomics.wait(owner, 0, OWNER_RESTORE, 1);
          continue;
        }
        this.events();
        if (!running) this.idle();
        else if (!this.background()) break;
      }
    } finally {
      this.unmapWindows();
      for (const t of this.tasks) closeFd(t.uffd);
      for (const fd of this.fds) fs.closeSync(fd);
    }
  }

  private add(t: LazyTask, files: string[]): void {
    for (let i = this.fds.length; i < files.length; i++) {
      this.fds.push(fs.openSync(files[i]!, 'r'));
      const c = this.toCheck.get(fs.realpathSync(files[i]!));
      this.checks.push(c ? { ...c, path: files[i]!, hint: 0 } : null);
    }
    const pieces: Piece[] = [];
    for (let i = 0; i + 4 <= t.pieces.length; i += 4) {
      const n = t.pieces[i + 1]!;
      pieces.push({ start: t.pieces[i]!, n, file: t.pieces[i + 2]!, off: t.pieces[i + 3]!, done: new Uint8Array(n), left: n, next: 0 });
    }
    this.tasks.push(new TaskFill(t.uffd, t.pid, pieces));
  }

  /** Messages the restore's thread read from the uffds and left to the filler, handled in order. */
  private forwarded(list: { uffd: number; msg: Uint8Array }[]): void {
    for (const f of list) {
      const t = this.tasks.find((x) => x.uffd === f.uffd && !x.gone);
      if (!t) continue;
      this.msgs.set(f.msg, 0);
      this.event(t, 0);
    }
  }

  /** Waits up to 1 ms for an event on any uffd. */
  private idle(): void {
    const live = this.tasks.filter((t) => !t.gone).slice(0, 64);
    if (live.length === 0) {
      Atomics.wait(state, 7, 1, 1);
      return;
    }
    live.forEach((t, i) => {
      this.pollFds.writeInt32LE(t.uffd, i * 8);
      this.pollFds.writeInt16LE(1, i * 8 + 4); // POLLIN
      this.pollFds.writeInt16LE(0, i * 8 + 6);
    });
    syscallRaw('poll', addressOf(this.pollFds), live.length, 1);
  }

  /** Reads and handles every event queued on every uffd. */
  private events(): void {
    for (let again = true; again; ) {
      again = false;
      for (const t of [...this.tasks]) {
        if (t.gone) continue;
        for (;;) {
          const n = Number(syscallRaw('read', t.uffd, this.msgsAddr, this.msgs.length));
          if (n <= 0) break; // EAGAIN: nothing queued
          again = true;
          for (let at = 0; at + UFFD_MSG_SIZE <= n; at += UFFD_MSG_SIZE) this.event(t, at);
        }
      }
      const retry = this.retry;
      this.retry = [];
      for (const f of retry) this.fault(f.t, f.page);
      if (this.retry.length) again = true;
    }
  }

  private event(t: TaskFill, at: number): void {
    const m = this.msgs;
    const kind = m.readUInt8(at);
    const a = m.readBigUInt64LE(at + 8), b = m.readBigUInt64LE(at + 16), c = m.readBigUInt64LE(at + 24);
    this.stats.events++;
    if (kind === UFFD_EVENT.PAGEFAULT) {
      this.stats.faults++;
      this.fault(t, Number(b / 4096n));
    } else if (kind === UFFD_EVENT.FORK) {
      this.tasks.push(t.clone(m.readUInt32LE(at + 8)));
    } else if (kind === UFFD_EVENT.REMAP) {
      t.remap(Number(a / 4096n), Number(b / 4096n), Number(c / 4096n));
    } else if (kind === UFFD_EVENT.REMOVE || kind === UFFD_EVENT.UNMAP) {
      t.drop(Number(a / 4096n), Number((b + 4095n) / 4096n));
    }
  }

  /**
   * A fault at `page`: its page from the image, or the zero page where the image has none
   * (this wakes the faulting thread), then read-ahead. A fault where the last read-ahead
   * ended, or right after a page in, is a sequential reader's: it gets twice as much as the
   * last (up to AHEAD_PAGES), across pieces and the short holes between them, which are
   * zero-filled too (each would cost the reader a fault).
   */
  private fault(t: TaskFill, page: number): void {
    const len = t.streams.get(page);
    if (len !== undefined) t.streams.delete(page);
    const seq = len !== undefined || t.filled(page - 1);
    const end = page + (len !== undefined ? Math.min(AHEAD_PAGES, 2 * len) : FAULT_PAGES);
    let at = page;
    for (let k = t.indexAfter(page); at < end; ) {
      const p = t.pieces[k];
      const first = at === page;
      if (p && p.start <= at) {
        const i = at - p.start, lim = Math.min(p.n, end - p.start);
        let j = i + 1;
        if (p.done[i]) {
          // In already (the thread is woken), or dropped by the task (zero now).
          if (first && !this.zeroFirst(t, page)) return;
          while (j < lim && p.done[j]) j++;
        } else {
          while (j < lim && !p.done[j] && (!first || j - i < FAULT_PAGES)) j++;
          this.check(p.file, p.off + i * PAGE, (j - i) * PAGE);
          if (!this.copy(t, p, i, j - i, this.mapped(p.file, p.off + i * PAGE, (j - i) * PAGE))) {
            if (first && !t.gone) this.retry.push({ t, page });
            return;
          }
        }
        at = p.start + j;
        if (j === p.n) k++;
      } else {
        const gap = (p ? p.start : Infinity) - at;
        if (first && !(seq && gap <= MAX_GAP)) {
          if (!this.zeroFirst(t, page)) return;
          at++;
        } else if (seq && gap <= MAX_GAP) {
          const n = Math.min(gap, end - at);
          const r = this.zeroRun(t, at, n);
          if (r < 0 && first) {
            // Not all in one area (ENOENT), or the mm is changing: the faulting page alone.
            if (!this.zeroFirst(t, page)) return;
            at++;
            break;
          }
          if (r < 0) break;
          at += n;
        } else {
          break;
        }
      }
    }
    t.stream(at, at - page);
    this.hint(t, at);
  }

  /** Tells the restore's thread, which checks the pages file ahead (LazyFiller.checkAhead), behind `page` (or the next page to come) that the filler will want it soon. */
  private hint(t: TaskFill, page: number): void {
    const p = t.pieces[t.indexAfter(page)];
    const c = p && this.checks[p.file];
    if (!c) return;
    const k = Math.floor((p.off + Math.max(0, page - p.start) * PAGE) / SUM_CHUNK);
    for (let s = 0; s < c.hints.length; s++) if (c.hints[s] === k) return;
    Atomics.store(c.hints, c.hint, k);
    c.hint = (c.hint + 1) % c.hints.length;
  }

  /** The faulting page where it has nothing to come: the zero page, or woken if it is in already; false if it must be tried again. */
  private zeroFirst(t: TaskFill, page: number): boolean {
    const r = this.fill.zero(t.uffd, BigInt(page) * 4096n, PAGE);
    if (r === -EAGAIN) {
      this.retry.push({ t, page });
      return false;
    }
    // In already (a copy raced the fault), or unmapped meanwhile (its UNMAP event is on its
    // way): the thread is woken, to find the page there or fault as the kernel has it now.
    if (r === -EEXIST || r === -ENOENT) uffdWake(t.uffd, BigInt(page) * 4096n, 4096n);
    else if (r < 0) this.lost(t, r, page);
    else this.stats.zero++;
    return !t.gone;
  }

  /** Zero pages at the `n` pages from `at` that have none (read-ahead over holes): 0, or -errno where it stopped. */
  private zeroRun(t: TaskFill, at: number, n: number): number {
    while (n > 0) {
      const r = this.fill.zero(t.uffd, BigInt(at) * 4096n, n * PAGE);
      const pages = r > 0 ? r / PAGE : r === -EEXIST ? 1 : 0;
      if (r > 0) this.stats.zero += pages;
      if (pages === 0) {
        if (r === -ESRCH) this.lost(t, r, at);
        return r;
      }
      at += pages;
      n -= pages;
    }
    return 0;
  }

  /** UFFDIO_COPY of pages [i, i+n) of `p` from `src`, page by page past those already in; false if it must be tried again (EAGAIN). */
  private copy(t: TaskFill, p: Piece, i: number, n: number, src: bigint): boolean {
    let k = 0;
    while (k < n) {
      const r = this.fill.copy(t.uffd, BigInt(p.start + i + k) * 4096n, src + BigInt(k * PAGE), (n - k) * PAGE);
      if (r > 0) {
        const pages = r / PAGE;
        markDone(p, i + k, pages);
        this.stats.copied += pages;
        k += pages;
      } else if (r === -EEXIST) {
        markDone(p, i + k, 1); // in already (a fault raced the background pass)
        k++;
      } else if (r === -EAGAIN) {
        return false;
      } else if (r === -ENOENT) {
        // Unmapped meanwhile (its UNMAP event is on its way): a thread waiting there is woken.
        markDone(p, i + k, 1);
        uffdWake(t.uffd, BigInt(p.start + i + k) * 4096n, 4096n);
        k++;
      } else {
        this.lost(t, r, p.start + i + k);
        return !t.gone;
      }
    }
    return true;
  }

  /** The task's mm is gone (it exited): nothing more to fill. Anything else is a failure. */
  private lost(t: TaskFill, r: number, page: number): void {
    if (r === -ESRCH) {
      t.gone = true;
      for (const p of t.pieces) markDone(p, 0, p.n);
      return;
    }
    throw new Error(`Cannot fill page 0x${(page * PAGE).toString(16)} of ${t.pid > 0 ? `pid ${t.pid}` : 'a child forked while it was filled'}: errno ${-r}`);
  }

  /** One chunk of the background pass; false once every task is full. */
  private background(): boolean {
    for (const t of this.tasks) {
      if (t.gone) continue;
      while (t.cursor < t.pieces.length && t.pieces[t.cursor]!.left === 0) t.cursor++;
      const p = t.pieces[t.cursor];
      if (!p) continue;
      let i = p.next;
      while (p.done[i]) i++;
      p.next = i;
      let n = 1;
      while (n < CHUNK_PAGES && i + n < p.n && !p.done[i + n]) n++;
      this.check(p.file, p.off + i * PAGE, n * PAGE);
      const src = this.mapped(p.file, p.off + i * PAGE, n * PAGE);
      this.copy(t, p, i, n, src);
      this.hint(t, p.start + i + n);
      return true;
    }
    return false;
  }

  /**
   * Bytes [off, off+len) of pages file `file` are about to go into a task: each chunk they
   * touch is read and its CRC-32 checked first, once. A chunk that differs fails the filler,
   * which kills the tree before any byte of it is in (the restore fails, naming the bytes).
   */
  private check(file: number, off: number, len: number): void {
    const c = this.checks[file];
    if (!c) return;
    for (let k = Math.floor(off / SUM_CHUNK); k * SUM_CHUNK < off + len; k++) {
      const v = Atomics.load(c.ok, k);
      if (v === CHUNK_OK) continue;
      // Not checked yet, or found damaged by the restore's thread: checked again here, which fails naming the bytes.
      const at = k * SUM_CHUNK, n = Math.min(SUM_CHUNK, c.size - at);
      const got = n > 0 ? fs.readSync(this.fds[file]!, this.chunkBuf, 0, n, at) : 0;
      if (got !== n || !chunkSumMatches(c, k, this.chunkBuf.subarray(0, n))) {
        throw new Error(`${c.path} is damaged: its CRC-32 of bytes ${at}-${at + n} differs from the one written with it`);
      }
      Atomics.store(c.ok, k, CHUNK_OK);
    }
  }

  /** The address in stasis of [off, off+len) of a pages file, through a window mapped read-only. */
  private mapped(file: number, off: number, len: number): bigint {
    const k = this.windows.findIndex((w) => w.file === file && off >= w.off && off + len <= w.off + w.len);
    if (k >= 0) {
      const w = this.windows[k]!;
      this.windows.splice(k, 1);
      this.windows.push(w);
      return w.addr + BigInt(off - w.off);
    }
    if (this.windows.length >= WINDOWS) {
      const old = this.windows.shift()!;
      syscallRaw('munmap', old.addr, old.len);
    }
    const start = off - (off % PAGE);
    const size = Math.max(WINDOW, off + len - start);
    // Populated: UFFDIO_COPY reads its source with page faults disabled, and each source page
    // not mapped yet costs it a retry through the slow path (mm/userfaultfd.c, mfill_atomic).
    const addr = syscallRaw('mmap', 0, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, this.fds[file]!, start);
    if (addr < 0n && addr > -4096n) throw new Error(`Cannot map pages file ${file}: errno ${-addr}`);
    this.windows.push({ file, off: start, len: size, addr });
    return addr + BigInt(off - start);
  }

  private unmapWindows(): void {
    for (const w of this.windows) syscallRaw('munmap', w.addr, w.len);
    this.windows = [];
  }

  kill(): void {
    for (const t of this.tasks) if (t.pid > 0 && !t.gone) try { kill(t.pid, 9); } catch { /* gone */ }
  }
}

// The restore's thread may be blocked (Atomics.wait): the outcome goes through shared memory.
const { state: shared, port } = workerData as { state: SharedArrayBuffer; port: MessagePort };
const state = new Int32Array(shared, 0, 8);
/** Which thread reads the uffds: lazy-interim.ts. */
const owner = new Int32Array(shared, 36, 1);
// The restored tasks wait on this thread, and compete with it for the CPU the moment they run
// (four threads reading their memory took three quarters of it, and the fill ran at a quarter
// of its speed): it runs at nice -10 where stasis may (only this thread; the tasks keep theirs).
setOwnNice(-10);
// For tests: a thread that loads this much later (the restore's thread serves the faults meanwhile: lazy-interim.ts).
const delay = Number(process.env.STASIS_FILLER_DELAY_MS ?? 0);
if (delay > 0) sleepSync(delay);
Atomics.store(state, 7, 1); // loaded: the first task armed waits for it (woken now, not at its next 20 ms)
Atomics.notify(state, 7);
// A spare filler (LazyFiller.take()) waits here, idle, until it is first told something.
Atomics.wait(new Int32Array(shared, 32, 1), 0, 0);
{
  let f: Filler | null = null;
  try {
    f = new Filler(port);
    f.run();
  } catch (e) {
    // A page that cannot be put in: the task must not run on with a hole in its memory.
    f?.kill();
    const msg = Buffer.from((e as Error).message).subarray(0, shared.byteLength - 64);
    new Uint8Array(shared, 64).set(msg);
    Atomics.store(state, 6, msg.length);
    Atomics.store(state, 1, 1);
  } finally {
    if (f) [f.stats.faults, f.stats.zero, f.stats.copied, f.stats.events].forEach((x, i) => Atomics.store(state, 2 + i, x));
    Atomics.store(state, 0, 1);
    Atomics.notify(state, 0);
    port.close();
  }
}
