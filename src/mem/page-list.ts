// A task's page runs and reads in numbers, in typed arrays: a holey area of 1 GiB has
// thousands of them (8,202 in the benchmark's), and a restore walks them before its task can
// run, in code that runs once and cold. As objects with BigInt addresses they cost 25-35 ms of a
// lazy restore of that area before its tree ran (issue 15); as arrays, a few. Addresses are
// kept as page numbers (address / 4096): user addresses are below 2^47, exact in a double.
import type { PageRun } from './page-runs.js';
import { doubled, orderBy, permuted } from '../float-arrays.js';
import { firstEndingAfter } from './vma.js';

const PAGE = 4096;

/** Pages to read at `off` (bytes) of a pages image into [vaddr, vaddr + nrPages pages). */
export interface PageRead {
  vaddr: bigint;
  nrPages: number;
  off: number;
}

/** Runs of pages: run k is count[k] pages from page number page[k]. */
export interface PageRuns {
  n: number;
  page: Float64Array;
  count: Float64Array;
}

/** Reads of a pages image: read k is count[k] pages at page number page[k], from byte off[k] of the image. */
export interface PageReads extends PageRuns {
  off: Float64Array;
}

/** A PageReads (or, without offsets, a PageRuns) built a push at a time; done() gives it. */
export class PageList {
  n = 0;
  page: Float64Array;
  count: Float64Array;
  off: Float64Array;

  constructor(capacity = 16) {
    this.page = new Float64Array(capacity);
    this.count = new Float64Array(capacity);
    this.off = new Float64Array(capacity);
  }

  push(page: number, count: number, off = 0): void {
    if (this.n === this.page.length) this.grow();
    this.page[this.n] = page;
    this.count[this.n] = count;
    this.off[this.n] = off;
    this.n++;
  }

  done(): PageReads {
    return { n: this.n, page: this.page.subarray(0, this.n), count: this.count.subarray(0, this.n), off: this.off.subarray(0, this.n) };
  }

  private grow(): void {
    this.page = doubled(this.page);
    this.count = doubled(this.count);
    this.off = doubled(this.off);
  }
}

export const noReads = (): PageReads => new PageList(0).done();

/** `r` in the order of its file offsets: itself where it already is (a dump writes them so). */
export function sortedByOffset(r: PageReads): PageReads {
  const k = r.off;
  let sorted = true;
  for (let i = 1; i < r.n && sorted; i++) sorted = k[i - 1]! <= k[i]!;
  if (sorted) return r;
  const order = orderBy(k, r.n);
  return { n: r.n, page: permuted(r.page, order), count: permuted(r.count, order), off: permuted(k, order) };
}

/** Ranges (not overlapping) in page numbers, by address: what cutReads() cuts at. */
export interface PageCuts {
  starts: number[];
  ends: number[];
}

export function pageCuts(ranges: readonly { start: bigint; end: bigint }[]): PageCuts {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1));
  return { starts: sorted.map((v) => Number(v.start) / PAGE), ends: sorted.map((v) => Number(v.end) / PAGE) };
}

/**
 * Cuts `reads` at `cuts`: the parts outside them all are pushed onto `outside`, and each part
 * inside one ([from, to) in page numbers, at byte `off` of the image) goes to `inside` where
 * it is given. Each read's first range by a binary search: thousands of reads, run cold.
 */
export function cutReads(reads: PageReads, cuts: PageCuts, outside: PageList, inside?: (from: number, to: number, off: number) => void): void {
  const { starts, ends } = cuts;
  const { n, page, count, off } = reads;
  for (let r = 0; r < n; r++) {
    const s = page[r]!, e = s + count[r]!;
    let at = s;
    for (let i = firstEndingAfter(ends, s); i < starts.length && starts[i]! < e; i++) {
      if (starts[i]! > at) outside.push(at, starts[i]! - at, off[r]! + (at - s) * PAGE);
      if (inside) {
        const a = Math.max(starts[i]!, s);
        inside(a, Math.min(ends[i]!, e), off[r]! + (a - s) * PAGE);
      }
      at = Math.max(at, ends[i]!);
    }
    if (at < e) outside.push(at, e - at, off[r]! + (at - s) * PAGE);
  }
}

/** Reads as objects, for the code that takes a few of them at a time. */
export function readObjects(r: PageReads): PageRead[] {
  return Array.from({ length: r.n }, (_, i) => ({ vaddr: BigInt(r.page[i]! * PAGE), nrPages: r.count[i]!, off: r.off[i]! }));
}

/** Reads from objects (`vaddr` page-aligned). */
export function readsFrom(list: readonly PageRead[]): PageReads {
  const out = new PageList(list.length);
  for (const r of list) out.push(Number(r.vaddr) / PAGE, r.nrPages, r.off);
  return out.done();
}

/** Runs as objects. */
export function runObjects(r: PageRuns): PageRun[] {
  return Array.from({ length: r.n }, (_, i) => ({ vaddr: BigInt(r.page[i]! * PAGE), nrPages: r.count[i]! }));
}

/** The byte just past the last run (0 without any): runs are in address order. */
export function runsEnd(r: PageRuns): number {
  return r.n ? (r.page[r.n - 1]! + r.count[r.n - 1]!) * PAGE : 0;
}
