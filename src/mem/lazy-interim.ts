// restore --lazy-pages from the command line: the tree runs before the filler thread
// (lazy-filler.ts) has loaded, 15-25 ms of a thread's start-up on this machine's two cores.
// Until it has, the restore's thread answers the tasks' faults itself: each faulting page with
// the pages after it in its piece (a chunk checked against its CRC-32 first, as the filler
// checks it), or the zero page where the image has none. Nothing else: the first event of
// another kind (fork, mremap, madvise, munmap), a fault it cannot serve at once, or a chunk
// that fails its check is handed to the filler as it was read, and the restore's thread stops
// reading. The filler finds the pages put in here in already (EEXIST) and goes on.
//
// One reader at a time: `owner` (shared with the filler) is 0 until one of them reads a uffd,
// then 1 (the restore's thread) or 2 (the filler, for good). A filler loaded before the tree
// runs (a resident stasis's, or a slow restore) owns them from its first look.
import fs from 'node:fs';
// Not through sys/index.js: the filler thread imports this module too, and loads only the syscalls it makes.
import { addressOf, syscallRaw } from '../sys/libc.js';
import { UffdFill, uffdWake, UFFD_EVENT, UFFD_MSG_SIZE } from '../sys/uffd.js';
import { crc32 } from '../sys/crc32-code.js';
import { SUM_CHUNK } from '../image/sum-compare.js';
import type { ChunkSums, LazyPiece, LazyTask } from './lazy-pages.js';

const PAGE = 4096;
const FAULT_PAGES = 128;
const EAGAIN = 11, EEXIST = 17, ENOENT = 2, ESRCH = 3;
export const OWNER_NONE = 0, OWNER_RESTORE = 1, OWNER_FILLER = 2;

/** A uffd message the restore's thread read and left to the filler, in order. */
export interface Forwarded {
  uffd: number;
  msg: Uint8Array;
}

export class InterimServer {
  private readonly fill = new UffdFill();
  private readonly msgs = Buffer.alloc(UFFD_MSG_SIZE * 16);
  private readonly msgsAddr = addressOf(this.msgs);
  private readonly buf = Buffer.allocUnsafe(FAULT_PAGES * PAGE);
  private readonly bufAddr = addressOf(this.buf);
  private readonly chunk = Buffer.allocUnsafe(SUM_CHUNK);
  private readonly pollFds: Buffer;
  private readonly fds = new Map<number, number>();
  private readonly gone = new Set<number>();
  /** What was read and not served, for the filler. */
  readonly forwarded: Forwarded[] = [];
  served = 0;

  constructor(private readonly tasks: LazyTask[], private readonly files: string[], private readonly sums: (file: string) => ChunkSums | undefined) {
    this.pollFds = Buffer.alloc(8 * tasks.length);
  }

  /**
   * Serves faults until `loaded()` (checked at least every millisecond) or until it must stop
   * (it then left what it read in `forwarded`). Returns false if `until` passed first.
   */
  serve(loaded: () => boolean, until: number): boolean {
    try {
      while (!loaded()) {
        if (this.forwarded.length) return true;
        if (Date.now() > until) return false;
        this.tasks.forEach((t, i) => {
          this.pollFds.writeInt32LE(t.uffd, i * 8);
          this.pollFds.writeInt16LE(1, i * 8 + 4); // POLLIN
          this.pollFds.writeInt16LE(0, i * 8 + 6);
        });
        syscallRaw('poll', addressOf(this.pollFds), this.tasks.length, 1);
        for (const t of this.tasks) {
          if (this.gone.has(t.uffd)) continue;
          const n = Number(syscallRaw('read', t.uffd, this.msgsAddr, this.msgs.length));
          for (let at = 0; at + UFFD_MSG_SIZE <= n; at += UFFD_MSG_SIZE) {
            if (this.forwarded.length || !this.event(t, at)) this.forwarded.push({ uffd: t.uffd, msg: Uint8Array.from(this.msgs.subarray(at, at + UFFD_MSG_SIZE)) });
          }
        }
      }
      return true;
    } finally {
      for (const fd of this.fds.values()) fs.closeSync(fd);
      this.fds.clear();
    }
  }

  /** A message read: true if it was served here. */
  private event(t: LazyTask, at: number): boolean {
    if (this.msgs.readUInt8(at) !== UFFD_EVENT.PAGEFAULT) return false;
    const page = Number(this.msgs.readBigUInt64LE(at + 16) / 4096n);
    const p = pieceAt(t, page);
    if (!p) {
      const r = this.fill.zero(t.uffd, BigInt(page) * 4096n, PAGE);
      if (r === -EEXIST || r === -ENOENT) uffdWake(t.uffd, BigInt(page) * 4096n, 4096n);
      else if (r === -ESRCH) this.gone.add(t.uffd);
      else if (r < 0) return false;
      this.served++;
      return true;
    }
    const n = Math.min(FAULT_PAGES, p.start + p.n - page);
    const off = p.off + (page - p.start) * PAGE;
    if (!this.checked(p.file, off, n * PAGE)) return false;
    const fd = this.fd(p.file);
    if (fs.readSync(fd, this.buf, 0, n * PAGE, off) !== n * PAGE) return false;
    for (let k = 0; k < n; ) {
      const r = this.fill.copy(t.uffd, BigInt(page + k) * 4096n, this.bufAddr + BigInt(k * PAGE), (n - k) * PAGE);
      if (r > 0) k += r / PAGE;
      else if (r === -EEXIST || r === -ENOENT) {
        if (k === 0) uffdWake(t.uffd, BigInt(page) * 4096n, 4096n);
        k++;
      } else if (r === -ESRCH) {
        this.gone.add(t.uffd);
        break;
      } else if (k === 0) {
        return false; // EAGAIN (the mm is changing: an event is on its way) or worse: the filler's
      } else {
        break;
      }
    }
    this.served++;
    return true;
  }

  /** Whether every chunk of [off, off+len) of pages file `file` is checked, checking those that are not; false if one fails (the filler fails on it, naming it). */
  private checked(file: number, off: number, len: number): boolean {
    const c = this.sums(this.files[file]!);
    if (!c) return true;
    for (let k = Math.floor(off / SUM_CHUNK); k * SUM_CHUNK < off + len; k++) {
      if (Atomics.load(c.ok, k)) continue;
      const at = k * SUM_CHUNK, n = Math.min(SUM_CHUNK, c.size - at);
      if (n <= 0 || fs.readSync(this.fd(file), this.chunk, 0, n, at) !== n) return false;
      if (!chunkSumMatches(c, k, this.chunk.subarray(0, n))) return false;
      Atomics.store(c.ok, k, 1);
    }
    return true;
  }

  private fd(file: number): number {
    let fd = this.fds.get(file);
    if (fd === undefined) this.fds.set(file, (fd = fs.openSync(this.files[file]!, 'r')));
    return fd;
  }
}

/** Whether `bytes`, chunk `k` of the pages file of `c`, have the CRC-32 written with it. */
export function chunkSumMatches(c: ChunkSums, k: number, bytes: Uint8Array): boolean {
  return (crc32(bytes) >>> 0).toString(16).padStart(8, '0') === c.chunks.slice(k * 8, k * 8 + 8);
}

/** The index of the first of `n` pieces (sorted, not overlapping; piece i ends before page `end(i)`) that ends after `page`. */
export function pieceIndexAfter(n: number, end: (i: number) => number, page: number): number {
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (end(mid) <= page) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The piece of `t` that holds `page`. */
function pieceAt(t: LazyTask, page: number): LazyPiece | undefined {
  const p = t.pieces;
  const k = 4 * pieceIndexAfter(p.length / 4, (i) => p[4 * i]! + p[4 * i + 1]!, page);
  return k < p.length && p[k]! <= page ? { start: p[k]!, n: p[k + 1]!, file: p[k + 2]!, off: p[k + 3]! } : undefined;
}
