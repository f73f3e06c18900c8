// Writing a task's private pages to a pages image: the pagemap says which pages hold data
// (present or swapped, not the zero page, not an untouched page of a file); the pages are
// gathered with process_vm_readv into one reused buffer, many runs per syscall, and
// streamed to the image, so memory use stays flat whatever the size of the task.
//
// Incremental dumps: a page with data that the parent image set has and that was not
// written since (per the dirty tracker) becomes an in_parent entry and is not read at all;
// with the hash backend every page is read and compared by content instead. Every page
// with data now is listed (present here or in the parent), so pages the task dropped since
// (munmap, MADV_DONTNEED) never come back from the parent.
import fs from 'node:fs';
import { vmReadv, ProcMem, pagemapScan, PAGE_IS, seekTo, type InjectorOptions } from '../sys/index.js';
import { TaskSplicer, isRegularFile } from './page-splice.js';
import { TaskWriter, canTaskWrite, type PageMover } from './task-write.js';
import { scanPagemap } from '../proc/pagemap.js';
import { StasisError } from '../errors.js';
import { PE } from '../image/pagemap-flags.js';
import { VMA, hasDumpablePages, type VmaSpec } from './vma.js';
import type { PageRanges, RangeCursor } from './page-ranges.js';
import type { PageHashes } from './dirty-hash.js';
import { hashPage } from './dirty-hash.js';
import { StreamSum, type FileSum } from '../image/image-sums.js';
import { RingSum } from '../image/sum-check.js';

const PAGE = 4096;
/** Size of the I/O buffer a PageDumper reads pages into. */
export const PAGE_BUF_SIZE = 4 << 20;
const BUF_SIZE = PAGE_BUF_SIZE;
const PAGEMAP_CHUNK = 65536; // entries per pagemap read: 512 KiB
const IOV_MAX = 1024;
/** From this many bytes to read, the CRC-32 is computed on another thread (its start costs ~20 ms). */
const RING_SUM_BYTES = 32 << 20;
/** Spliced pages are handed to the summing thread in ranges of the file this big, which it reads back. */
const SUM_RANGE = 16 << 20;
const SUM_RANGES = 4;
/** The most bytes one injected vmsplice is given (it can take up to IOV_MAX segments of any size). */
const SPLICE_MAX = 1 << 30;

export interface PageDumpStats {
  pagesScanned: number;
  pagesWritten: number;
  pagesSkippedParent: number;
}

/** A pagemap entry as the image holds it: PE.PRESENT (pages here) or PE.PARENT. */
export interface PagemapRun {
  vaddr: bigint;
  nrPages: number;
  flags: number;
}

export interface IncrementalPages {
  /** Pages the parent image set holds (entries of any kind). */
  parent: PageRanges;
  /** Pages written since the parent; null when that is unknown or decided by content. */
  written: PageRanges | null;
  /** The parent's page hashes: every page is read and compared (hash backend). */
  hashes?: PageHashes | undefined;
}

export interface PageDumperOptions {
  incremental?: IncrementalPages | undefined;
  /**
   * Sees the hash of every page read (hashPage()'s halves at hash[at] and hash[at + 1]), with its
   * page number (the hash backend records them): the same hash the comparison with a parent's
   * hashes takes, computed once per page.
   */
  onPage?: ((pageNo: number, hash: Uint32Array, at: number) => void) | undefined;
  /** The task runs while its pages are read (pre-dump): a page gone meanwhile is written as zeros. */
  running?: boolean;
  /** Called after each scanned chunk with the pages scanned so far. */
  onScanned?: ((pages: number) => void) | undefined;
  /** Called after each buffer of pages read and written, with its bytes (progress, cancellation). */
  onFlushed?: ((bytes: number) => void) | undefined;
  /**
   * Find the pages with data with the PAGEMAP_SCAN ioctl (the kernel filters; ~2.5 ms per
   * GiB, against ~5 ms of pagemap reading plus decoding in a cold JIT, which dominates a
   * small incremental dump).
   */
  pagemapScan?: boolean;
  /**
   * A PAGE_BUF_SIZE buffer to read into, allocated (and so faulted in) before the tree was
   * frozen: a fresh 4 MiB costs its first use ~10 ms of page faults inside the downtime.
   */
  buffer?: Buffer | undefined;
  /**
   * How to inject into the (frozen) task: given, many pages into a regular file go with one
   * copy instead of two, by the task's own pwritev (task-write.ts) or its vmsplice and
   * stasis's splice (page-splice.ts).
   */
  inject?: InjectorOptions | undefined;
}

/** The one-copy path's state: the task's writer (or pipes), where the next bytes go, what is summed. */
interface Spliced {
  sp: PageMover;
  pos: bigint;
  /** Where the range not yet handed to the summing thread starts. */
  rangeStart: bigint;
}

export class PageDumper {
  private readonly buf: Buffer;
  /** The buffer being filled: `buf`, or one of the ring's. */
  private cur: Buffer;
  private ring: RingSum | null = null;
  private readonly iov = Buffer.alloc(IOV_MAX * 16);
  private segs: { addr: bigint; len: number }[] = [];
  private used = 0;
  private cap = BUF_SIZE;
  private spliced: Spliced | null = null;
  private readonly pagemapFd: number;
  private procMem: ProcMem | null = null;
  private readonly planned: { vaddr: bigint; nrPages: number; read: boolean }[] = [];
  private readonly parentCursor: RangeCursor | null;
  private readonly writtenCursor: RangeCursor | null;
  private readonly byContent: boolean;
  private readonly hashTmp = new Uint32Array(2);
  readonly entries: PagemapRun[] = [];
  readonly stats: PageDumpStats = { pagesScanned: 0, pagesWritten: 0, pagesSkippedParent: 0 };
  private readonly written = new StreamSum();

  constructor(
    private readonly pid: number,
    private readonly outFd: number,
    private readonly zeroPfn: bigint | null,
    private readonly opts: PageDumperOptions = {},
  ) {
    this.pagemapFd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
    this.buf = opts.buffer && opts.buffer.length >= BUF_SIZE ? opts.buffer : Buffer.allocUnsafe(BUF_SIZE);
    this.cur = this.buf;
    const inc = opts.incremental;
    this.parentCursor = inc ? inc.parent.cursor() : null;
    this.byContent = inc?.hashes !== undefined;
    this.writtenCursor = inc && !this.byContent && inc.written ? inc.written.cursor() : null;
  }

  /** Reads the pagemap (the task must be frozen): which pages to read, which are the parent's. */
  plan(vmas: VmaSpec[]): void {
    if (this.opts.pagemapScan) {
      this.planByScan(vmas);
      return;
    }
    const pm = Buffer.allocUnsafe(PAGEMAP_CHUNK * 8);
    for (const v of vmas) {
      if (this.planVdso(v)) continue;
      if (!hasDumpablePages(v)) continue;
      const excludeFile = (v.status & VMA.FILE_PRIVATE) !== 0;
      for (let addr = v.start; addr < v.end; ) {
        const pages = Math.min(PAGEMAP_CHUNK, Number((v.end - addr) / BigInt(PAGE)));
        const n = fs.readSync(this.pagemapFd, pm, 0, pages * 8, Number(addr / BigInt(PAGE)) * 8);
        if (n !== pages * 8) throw new StasisError('E_DUMP_FAILED', `Short read of /proc/${this.pid}/pagemap at 0x${addr.toString(16)}`);
        this.stats.pagesScanned += pages;
        for (const run of scanPagemap(pm.subarray(0, n), addr, PAGE, this.zeroPfn, { excludeFile })) this.planRun(run.vaddr, run.nrPages);
        addr += BigInt(pages * PAGE);
        this.opts.onScanned?.(this.stats.pagesScanned);
      }
    }
  }

  /** The same selection as scanPagemap(), made by the kernel: present or swapped, not the zero page, not a file's page. */
  private planByScan(vmas: VmaSpec[]): void {
    for (const v of vmas) {
      if (this.planVdso(v)) continue;
      if (!hasDumpablePages(v)) continue;
      const exclude = PAGE_IS.PFNZERO | ((v.status & VMA.FILE_PRIVATE) !== 0 ? PAGE_IS.FILE : 0);
      pagemapScan(this.pagemapFd, v.start, v.end, {
        flags: 0, categoryInverted: exclude, categoryMask: exclude, categoryAnyofMask: PAGE_IS.PRESENT | PAGE_IS.SWAPPED, returnMask: PAGE_IS.PRESENT,
      }, (r) => {
        // Not present: swapped, or a guard page (a swap-format PTE marker that holds nothing), which pagemap tells apart.
        if (r.categories & PAGE_IS.PRESENT) this.planRun(r.start, Number((r.end - r.start) / BigInt(PAGE)));
        else this.planSwapped(r.start, r.end);
      });
      this.stats.pagesScanned += Number((v.end - v.start) / BigInt(PAGE));
      this.opts.onScanned?.(this.stats.pagesScanned);
    }
  }

  /** Pages of [start, end) in swap, read from pagemap (scanPagemap() leaves guard pages out). */
  private planSwapped(start: bigint, end: bigint): void {
    const pm = Buffer.allocUnsafe(PAGEMAP_CHUNK * 8);
    for (let addr = start; addr < end; ) {
      const pages = Math.min(PAGEMAP_CHUNK, Number((end - addr) / BigInt(PAGE)));
      const n = fs.readSync(this.pagemapFd, pm, 0, pages * 8, Number(addr / BigInt(PAGE)) * 8);
      if (n !== pages * 8) throw new StasisError('E_DUMP_FAILED', `Short read of /proc/${this.pid}/pagemap at 0x${addr.toString(16)}`);
      for (const run of scanPagemap(pm.subarray(0, n), addr, PAGE, this.zeroPfn)) this.planRun(run.vaddr, run.nrPages);
      addr += BigInt(pages * PAGE);
    }
  }

  /**
   * The vDSO's pages are always written, whole, as CRIU writes them: CRIU's restore reads
   * them to compare the dumped vDSO's symbols with the running kernel's. stasis's restore
   * skips them (the kernel maps the vDSO).
   */
  private planVdso(v: VmaSpec): boolean {
    if (!(v.status & VMA.VDSO)) return false;
    this.planned.push({ vaddr: v.start, nrPages: Number((v.end - v.start) / BigInt(PAGE)), read: true });
    return true;
  }

  private planRun(vaddr: bigint, nrPages: number): void {
    const pc = this.parentCursor, wc = this.writtenCursor;
    if (!pc || !wc) {
      this.planned.push({ vaddr, nrPages, read: true });
      return;
    }
    const first = Number(vaddr / BigInt(PAGE));
    // In the parent and not written since: the parent's. Anything else is read.
    pc.split(first, first + nrPages, (s, e, inParent) => {
      if (!inParent) return this.planned.push({ vaddr: BigInt(s) * BigInt(PAGE), nrPages: e - s, read: true });
      wc.split(s, e, (s2, e2, written) => this.planned.push({ vaddr: BigInt(s2) * BigInt(PAGE), nrPages: e2 - s2, read: written }));
      return 0;
    });
  }

  /** Reads the planned pages and writes them (the task may run meanwhile if `running`). */
  write(): void {
    // Many pages, each read once and written whole: summed beside the copy, on the other core.
    const toRead = this.planned.reduce((n, p) => (p.read ? n + p.nrPages * PAGE : n), 0);
    if (toRead >= RING_SUM_BYTES && !this.opts.onPage && !this.byContent && !this.ring) this.startRing(toRead);
    for (const p of this.planned) {
      if (p.read) this.addRun(p.vaddr, p.nrPages);
      else {
        this.entry(p.vaddr, p.nrPages, PE.PARENT);
        this.stats.pagesSkippedParent += p.nrPages;
      }
    }
    this.flush();
    if (this.spliced) this.endSplice(this.spliced);
  }

  /**
   * The summing thread; and, for a frozen task whose pages go into a regular file from its
   * start (the sums count from there), the one-copy path, summed by reading the
   * file: the task writes them itself where it may (canTaskWrite()), else they are spliced.
   */
  private startRing(bytes: number): void {
    const inject = this.opts.inject;
    if (inject && !this.opts.running && isRegularFile(this.outFd) && fs.fstatSync(this.outFd).size === 0) {
      let sp: PageMover | undefined;
      if (canTaskWrite(this.pid, bytes)) {
        try {
          sp = new TaskWriter(this.pid, inject, this.outFd);
        } catch {
          sp = undefined; // (the task has no room for the fd, or may not have it: spliced, then)
        }
      }
      try {
        sp ??= new TaskSplicer(this.pid, inject);
      } catch {
        sp = undefined; // (no pipe in the task: the pages are read as before)
      }
      if (sp) {
        this.ring = new RingSum({ fd: this.outFd, ranges: SUM_RANGES });
        this.spliced = { sp, pos: 0n, rangeStart: 0n };
        this.cap = SPLICE_MAX;
        return;
      }
    }
    this.ring = new RingSum(3, BUF_SIZE);
  }

  /** The last range handed to be summed, the task's pipe closed, the file's offset after the pages. */
  private endSplice(s: Spliced): void {
    this.handRange(s, true);
    this.spliced = null;
    s.sp.close();
    seekTo(this.outFd, s.pos);
  }

  /** Hands the bytes spliced since the last range to the summing thread, which reads them back from the file. */
  private handRange(s: Spliced, last: boolean): void {
    const len = Number(s.pos - s.rangeStart);
    if (len === 0 || (!last && len < SUM_RANGE)) return;
    this.ring!.releaseRange(s.rangeStart, len);
    s.rangeStart = s.pos;
  }

  /** plan() and write() in one go, the task frozen throughout. */
  dumpVmas(vmas: VmaSpec[]): void {
    this.plan(vmas);
    this.write();
  }

  private entry(vaddr: bigint, nrPages: number, flags: number): void {
    const last = this.entries[this.entries.length - 1];
    if (last && last.flags === flags && last.vaddr + BigInt(last.nrPages * PAGE) === vaddr) last.nrPages += nrPages;
    else this.entries.push({ vaddr, nrPages, flags });
  }

  private addRun(vaddr: bigint, nrPages: number, record = true): void {
    // Decided per page at flush time when comparing by content.
    if (!this.byContent && record) {
      this.entry(vaddr, nrPages, PE.PRESENT);
      this.stats.pagesWritten += nrPages;
    }
    let addr = vaddr;
    let left = nrPages * PAGE;
    while (left > 0) {
      const room = this.cap - this.used;
      if (room === 0 || this.segs.length === IOV_MAX) {
        this.flush();
        continue;
      }
      const len = Math.min(room, left);
      this.segs.push({ addr, len });
      this.used += len;
      addr += BigInt(len);
      left -= len;
    }
  }

  private flush(): void {
    if (this.used === 0) return;
    this.segs.forEach((s, i) => {
      this.iov.writeBigUInt64LE(s.addr, i * 16);
      this.iov.writeBigUInt64LE(BigInt(s.len), i * 16 + 8);
    });
    if (this.spliced) {
      this.flushBySplice(this.spliced);
      return;
    }
    this.cur = this.ring ? this.ring.acquire() : this.buf;
    const got = vmReadv(this.pid, this.cur, this.used, this.iov, this.segs.length);
    if (got < this.used) this.readRest(got);
    const end = this.opts.onPage || this.byContent ? this.perPage() : this.used;
    let off = 0;
    while (off < end) off += fs.writeSync(this.outFd, this.cur, off, end - off);
    if (this.ring) this.ring.release(end);
    else this.written.add(this.buf.subarray(0, end));
    this.segs = [];
    this.used = 0;
    this.opts.onFlushed?.(end);
  }

  /**
   * The gathered segments spliced into the file by the task's vmsplice; where it stops (a
   * PROT_NONE page: a segment lies in one mapping), the rest of that segment is read as
   * before and written at its place, and the splicing goes on with the next.
   */
  private flushBySplice(s: Spliced): void {
    let segs = this.segs.map((g) => ({ ...g }));
    this.segs = [];
    this.used = 0;
    // (onFlushed, which may cancel the dump by throwing, is told between injected calls, never inside one.)
    const moved = (m: number) => {
      s.pos += BigInt(m);
      this.handRange(s, false);
    };
    while (segs.length) {
      segs.forEach((g, i) => {
        this.iov.writeBigUInt64LE(g.addr, i * 16);
        this.iov.writeBigUInt64LE(BigInt(g.len), i * 16 + 8);
      });
      let n = s.sp.move(this.iov, segs.length, this.outFd, s.pos, moved, (m) => this.opts.onFlushed?.(m));
      while (segs.length && n >= segs[0]!.len) n -= segs.shift()!.len;
      if (!segs.length) break;
      const g = segs.shift()!;
      this.unspliced(s, { addr: g.addr + BigInt(n), len: g.len - n });
    }
  }

  /** One segment read into the buffer and written at the file's offset, as without splicing; summed with its range of the file. */
  private unspliced(s: Spliced, g: { addr: bigint; len: number }): void {
    const ring = this.ring;
    this.spliced = null;
    this.ring = null;
    seekTo(this.outFd, s.pos);
    this.cap = BUF_SIZE;
    try {
      this.addRun(g.addr, g.len / PAGE, false);
      this.flush();
    } finally {
      this.spliced = s;
      this.ring = ring;
      this.cap = SPLICE_MAX;
    }
    s.pos += BigInt(g.len);
    this.handRange(s, false);
  }

  /** Hashes and compares page by page; packs the pages to write at the buffer's start. */
  private perPage(): number {
    const onPage = this.opts.onPage;
    const hashes = this.opts.incremental?.hashes;
    const pc = this.parentCursor;
    let pos = 0, keep = 0;
    for (const s of this.segs) {
      const firstPage = Number(s.addr / BigInt(PAGE));
      for (let i = 0; i < s.len / PAGE; i++, pos += PAGE) {
        const pageNo = firstPage + i;
        let same = false;
        const compared = hashes !== undefined && pc !== null && pc.covers(pageNo, pageNo + 1);
        if (onPage || compared) hashPage(this.buf, pos, this.hashTmp, 0);
        onPage?.(pageNo, this.hashTmp, 0);
        if (compared) same = hashes.same(pageNo, this.hashTmp, 0);
        const vaddr = BigInt(pageNo) * BigInt(PAGE);
        if (same) {
          this.entry(vaddr, 1, PE.PARENT);
          this.stats.pagesSkippedParent++;
          continue;
        }
        if (this.byContent) {
          this.entry(vaddr, 1, PE.PRESENT);
          this.stats.pagesWritten++;
        }
        if (keep !== pos) this.buf.copy(this.buf, keep, pos, pos + PAGE);
        keep += PAGE;
      }
    }
    return keep;
  }

  /** What process_vm_readv could not read (PROT_NONE pages): through /proc/PID/mem. */
  private readRest(from: number): void {
    this.procMem ??= new ProcMem(this.pid);
    let pos = 0;
    for (const s of this.segs) {
      const end = pos + s.len;
      if (end > from) {
        const skip = Math.max(0, from - pos);
        let n = 0;
        try {
          n = this.procMem.read(s.addr + BigInt(skip), this.cur, pos + skip, s.len - skip);
        } catch (e) {
          if (!this.opts.running) throw e;
        }
        if (n !== s.len - skip) {
          // A running task unmapped it meanwhile: whatever is mapped there later is new to
          // the tracker (unregistered, soft-dirty, or compared by content), never in_parent.
          if (!this.opts.running) throw new StasisError('E_DUMP_FAILED', `Cannot read pid ${this.pid} memory at 0x${(s.addr + BigInt(skip)).toString(16)}`);
          this.cur.fill(0, pos + skip + n, end);
        }
      }
      pos = end;
    }
  }

  /** Size and CRC-32 of what it wrote: the pages file's sum, as it writes it alone from its start. */
  get sum(): FileSum {
    return this.ring ? this.ring.finish() : this.written.sum;
  }

  close(): void {
    // Sums what it was given (a few ms at most) and ends the thread; `sum` keeps the result.
    if (this.spliced) {
      // (A write() that failed: the task's pipe is closed and its registers given back all the same.)
      const s = this.spliced;
      this.spliced = null;
      s.sp.close();
    }
    this.ring?.finish();
    fs.closeSync(this.pagemapFd);
    this.procMem?.close();
  }
}
