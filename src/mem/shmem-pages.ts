// Writing a shared memory object's used pages, against the previous image set of an
// incremental dump. No tracking can see every write to shared memory: a process may map a
// page, write it and unmap it between two dumps, and no page table shows it then (CRIU
// turned shmem tracking off for this). So the pages are compared instead: each used page is
// read from the object and compared with the parent's copy of it (found through the parent
// chain); an equal page is an in_parent entry, any other is written. Nothing is missed, and
// only changed pages are written; the cost is reading the parent's copy.
import fs from 'node:fs';
import { PE } from '../image/index.js';
import { resolvePages } from './page-chain.js';
import type { PageRun } from './page-runs.js';
import { readObjects } from './page-list.js';

const PAGE = 4096;

export interface ShmemEntry {
  vaddr: bigint;
  nrPages: number;
  flags: number;
}

interface Segment {
  /** First page and end page in the object. */
  start: number;
  end: number;
  fd: number;
  /** Byte offset of `start` in that pages image. */
  off: number;
}

/** The pages of object `shmid` in the image set `dir` (and its parents); null if it has none. */
export class ParentPages {
  private constructor(private readonly segs: Segment[], private readonly fds: number[]) {}

  static open(dir: string | null, shmid: bigint): ParentPages | null {
    if (!dir) return null;
    let pages;
    try {
      pages = resolvePages(dir, { kind: 'shmem-pagemap', id: Number(shmid) });
    } catch {
      return null; // the parent has no such object, or not whole: write every page
    }
    const fds: number[] = [];
    const segs: Segment[] = [];
    for (const src of pages.sources) {
      const fd = fs.openSync(src.path, 'r');
      fds.push(fd);
      for (const r of readObjects(src.reads)) {
        const start = Number(r.vaddr) / PAGE;
        segs.push({ start, end: start + r.nrPages, fd, off: r.off });
      }
    }
    segs.sort((a, b) => a.start - b.start);
    return new ParentPages(segs, fds);
  }

  /** Reads the parent's copy of pages [p0, p0 + n) into `into`; `have[i]` says whether page p0 + i was there. */
  read(p0: number, n: number, into: Buffer, have: Uint8Array): void {
    have.fill(0, 0, n);
    let lo = 0, hi = this.segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.segs[mid]!.end <= p0) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.segs.length && this.segs[i]!.start < p0 + n; i++) {
      const s = this.segs[i]!;
      const a = Math.max(s.start, p0), b = Math.min(s.end, p0 + n);
      const len = (b - a) * PAGE;
      const got = fs.readSync(s.fd, into, (a - p0) * PAGE, len, s.off + (a - s.start) * PAGE);
      if (got === len) have.fill(1, a - p0, b - p0);
    }
  }

  close(): void {
    for (const fd of this.fds) fs.closeSync(fd);
  }
}

/**
 * Copies the used runs of the object behind `fd` to `out`, except pages equal to the parent's;
 * returns the pagemap entries (offsets for addresses) and how many pages were written.
 */
export function copyShmemPages(fd: number, runs: PageRun[], out: number, parent: ParentPages | null, buf: Buffer, pbuf: Buffer): { entries: ShmemEntry[]; written: number } {
  const entries: ShmemEntry[] = [];
  let written = 0;
  const add = (vaddr: bigint, nrPages: number, flags: number) => {
    const last = entries[entries.length - 1];
    if (last && last.flags === flags && last.vaddr + BigInt(last.nrPages * PAGE) === vaddr) last.nrPages += nrPages;
    else entries.push({ vaddr, nrPages, flags });
    if (flags === PE.PRESENT) written += nrPages;
  };
  const have = new Uint8Array(buf.length / PAGE);
  const writeOut = (from: number, to: number) => {
    for (let off = from; off < to; ) off += fs.writeSync(out, buf, off, to - off);
  };
  for (const r of runs) {
    let pos = Number(r.vaddr);
    let left = r.nrPages * PAGE;
    while (left > 0) {
      const len = Math.min(left, buf.length);
      const n = fs.readSync(fd, buf, 0, len, pos);
      // Past the end of the object (a mapping beyond its size) reads as nothing: zeros.
      if (n < len) buf.fill(0, n, len);
      const pages = len / PAGE;
      if (!parent) {
        writeOut(0, len);
        add(BigInt(pos), pages, PE.PRESENT);
      } else {
        parent.read(pos / PAGE, pages, pbuf, have);
        for (let i = 0; i < pages; ) {
          const same = (k: number) => have[k] === 1 && buf.compare(pbuf, k * PAGE, (k + 1) * PAGE, k * PAGE, (k + 1) * PAGE) === 0;
          const flag = same(i);
          let j = i + 1;
          while (j < pages && same(j) === flag) j++;
          if (!flag) writeOut(i * PAGE, j * PAGE);
          add(BigInt(pos + i * PAGE), j - i, flag ? PE.PARENT : PE.PRESENT);
          i = j;
        }
      }
      pos += len;
      left -= len;
    }
  }
  return { entries, written };
}
