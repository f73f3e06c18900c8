// Sets of pages as sorted, disjoint [start, end) intervals of page numbers (vaddr / 4096:
// below 2^36, exact in a double and far cheaper than BigInt). Built in address order and
// queried in address order through a cursor, as dumps walk memory.

export class PageRanges {
  private starts: number[] = [];
  private ends: number[] = [];

  /** Adds [start, end); callers add in increasing order (overlaps and touching runs merge). */
  add(start: number, end: number): void {
    if (end <= start) return;
    const n = this.starts.length;
    if (n > 0 && start <= this.ends[n - 1]!) {
      if (start < this.starts[n - 1]!) throw new RangeError(`PageRanges.add out of order: ${start} after ${this.starts[n - 1]}`);
      if (end > this.ends[n - 1]!) this.ends[n - 1] = end;
      return;
    }
    this.starts.push(start);
    this.ends.push(end);
  }

  addBytes(start: bigint, end: bigint): void {
    this.add(Number(start / 4096n), Number((end + 4095n) / 4096n));
  }

  get count(): number {
    return this.starts.length;
  }

  get pages(): number {
    let n = 0;
    for (let i = 0; i < this.starts.length; i++) n += this.ends[i]! - this.starts[i]!;
    return n;
  }

  *[Symbol.iterator](): IterableIterator<[number, number]> {
    for (let i = 0; i < this.starts.length; i++) yield [this.starts[i]!, this.ends[i]!];
  }

  /** Builds a set from intervals in any order. */
  static from(list: Iterable<[number, number]>): PageRanges {
    const sorted = [...list].sort((a, b) => a[0] - b[0]);
    const r = new PageRanges();
    for (const [s, e] of sorted) r.add(s, e);
    return r;
  }

  cursor(): RangeCursor {
    return new RangeCursor(this.starts, this.ends);
  }
}

/** Answers "which parts of [start, end) are in the set" for queries in increasing order. */
export class RangeCursor {
  private i = 0;
  constructor(private readonly starts: number[], private readonly ends: number[]) {}

  /** Splits [start, end) into pieces, each wholly inside the set or wholly outside it. */
  split(start: number, end: number, piece: (s: number, e: number, inside: boolean) => void): void {
    while (this.i < this.ends.length && this.ends[this.i]! <= start) this.i++;
    let at = start;
    let j = this.i;
    while (at < end) {
      if (j >= this.starts.length || this.starts[j]! >= end) {
        piece(at, end, false);
        return;
      }
      const s = this.starts[j]!, e = this.ends[j]!;
      if (s > at) {
        piece(at, s, false);
        at = s;
      }
      const stop = Math.min(e, end);
      piece(at, stop, true);
      at = stop;
      j++;
    }
  }

  /** Whether every page of [start, end) is in the set. */
  covers(start: number, end: number): boolean {
    let all = true;
    this.split(start, end, (_s, _e, inside) => {
      if (!inside) all = false;
    });
    return all;
  }
}
