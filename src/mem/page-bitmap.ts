// One bit per page of an object (a shmem object, a VMA), in 32-bit words. Dumps keep one
// of these per purpose: `used` (the page holds data in some mapper, or in the object
// itself), and beside it a `dirty` one for incremental dumps (written since the last dump);
// the pages to write are then `used & dirty`, the others are in the parent (PE.PARENT).
import type { PageRun } from './page-runs.js';

const PAGE = 4096n;

export class PageBitmap {
  readonly words: Uint32Array;

  constructor(readonly nrPages: number) {
    this.words = new Uint32Array(Math.ceil(nrPages / 32));
  }

  test(page: number): boolean {
    return page < this.nrPages && ((this.words[page >>> 5]! >>> (page & 31)) & 1) === 1;
  }

  /** Sets pages [first, first + count), clipped to the bitmap. */
  setRange(first: number, count: number): void {
    let i = Math.max(0, first);
    const end = Math.min(this.nrPages, first + count);
    while (i < end && (i & 31) !== 0) this.words[i >>> 5]! |= 1 << (i & 31), i++;
    while (i + 32 <= end) this.words[i >>> 5] = 0xffffffff, i += 32;
    while (i < end) this.words[i >>> 5]! |= 1 << (i & 31), i++;
  }

  /** This |= other (same size). */
  or(other: PageBitmap): void {
    if (other.nrPages !== this.nrPages) throw new RangeError(`Bitmaps of ${this.nrPages} and ${other.nrPages} pages`);
    for (let w = 0; w < this.words.length; w++) this.words[w]! |= other.words[w]!;
  }

  /** This &= other (same size): e.g. used & dirty. */
  and(other: PageBitmap): void {
    if (other.nrPages !== this.nrPages) throw new RangeError(`Bitmaps of ${this.nrPages} and ${other.nrPages} pages`);
    for (let w = 0; w < this.words.length; w++) this.words[w]! &= other.words[w]!;
  }

  count(): number {
    let n = 0;
    for (let w of this.words) {
      w -= (w >>> 1) & 0x55555555;
      w = (w & 0x33333333) + ((w >>> 2) & 0x33333333);
      n += (((w + (w >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
    }
    return n;
  }

  /** Runs of set pages, as byte offsets from `base` (0 for offsets in an object). */
  runs(base = 0n): PageRun[] {
    const out: PageRun[] = [];
    let start = -1;
    for (let w = 0; w < this.words.length; w++) {
      const word = this.words[w]!;
      // Whole words at once: the common case of large untouched or fully used areas.
      if ((word === 0 && start < 0) || (word === 0xffffffff && start >= 0)) continue;
      for (let b = 0; b < 32; b++) {
        const page = w * 32 + b;
        if (page >= this.nrPages) break;
        const set = ((word >>> b) & 1) === 1;
        if (set && start < 0) start = page;
        else if (!set && start >= 0) {
          out.push({ vaddr: base + BigInt(start) * PAGE, nrPages: page - start });
          start = -1;
        }
      }
    }
    if (start >= 0) out.push({ vaddr: base + BigInt(start) * PAGE, nrPages: this.nrPages - start });
    return out;
  }
}
