import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { areasWithPages } from './vma.js';
import { rangesLess, splitLazy } from './lazy-pages.js';
import { readsOutside } from '../restore/cow-premap.js';
import type { PageRead, PageSource } from './page-chain.js';
import { readObjects, readsFrom } from './page-list.js';
import type { VmaSpec } from './vma.js';

// The restore's range arithmetic, in numbers, against a page-by-page model.
const PAGE = 4096, BASE = 0x7f0000000000;

/** Disjoint [start, end) areas in address order, in pages from BASE, from gaps and lengths. */
const areas = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 4 }), n: fc.integer({ min: 1, max: 6 }) }), { maxLength: 6 });
function lay(xs: { gap: number; n: number }[], shuffle: number): { start: bigint; end: bigint }[] {
  let at = 0;
  const out = xs.map(({ gap, n }) => {
    const s = at + gap;
    at = s + n;
    return { start: BigInt(BASE + s * PAGE), end: BigInt(BASE + (s + n) * PAGE) };
  });
  // (callers give them in any order)
  return shuffle % 2 ? out.reverse() : out;
}
const pageOf = (a: bigint | number) => (Number(a) - BASE) / PAGE;
const inAny = (pg: number, rs: { start: bigint; end: bigint }[]) => rs.some((r) => pg >= pageOf(r.start) && pg < pageOf(r.end));

/** Reads of one source: runs of pages with increasing file offsets. */
function readsOf(xs: { gap: number; n: number }[]): PageRead[] {
  let off = 0;
  return lay(xs, 0).map((r) => {
    const n = (pageOf(r.end) - pageOf(r.start));
    const read = { vaddr: r.start, nrPages: n, off };
    off += n * PAGE + PAGE;
    return read;
  });
}
/** page -> file offset of every page of `reads`. */
function pagesOf(reads: PageRead[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of reads) for (let k = 0; k < r.nrPages; k++) m.set(pageOf(r.vaddr) + k, r.off + k * PAGE);
  return m;
}

test('areasWithPages(), splitLazy() and readsOutside() give what a page-by-page model gives', () => {
  fc.assert(fc.property(areas, areas, fc.nat(), (va, ra, shuffle) => {
    const vmas = lay(va, shuffle);
    const reads = readsOf(ra);
    // areasWithPages: the areas some page of the runs is in (runs in address order, or not).
    const got = areasWithPages(readsFrom(shuffle % 3 ? reads : [...reads].reverse()), vmas);
    const want = vmas.filter((v) => [...pagesOf(reads).keys()].some((pg) => inAny(pg, [v])));
    assert.deepEqual([...got].sort((a, b) => Number(a.start - b.start)), [...want].sort((a, b) => Number(a.start - b.start)));
    // splitLazy: each page of the reads inside an area in a piece, at its offset, in page order,
    // none split across areas; from one source, or from two whose reads alternate (an
    // incremental chain); each page outside them all in a read of its own source.
    const src: PageSource = { path: 'pages-1.img', reads: readsFrom(reads) };
    const two = shuffle % 4 === 1;
    const sources = two ? [0, 1].map((h) => ({ path: `pages-${h + 1}.img`, reads: readsFrom(reads.filter((_, i) => i % 2 === h)) })) : [src];
    const split = splitLazy(sources, vmas as unknown as VmaSpec[], (f: string) => (f === 'pages-2.img' ? 4 : 3));
    const packed = split.pieces;
    const pieces = Array.from({ length: packed.length / 4 }, (_, i) => ({ start: packed[4 * i]!, n: packed[4 * i + 1]!, file: packed[4 * i + 2]!, off: packed[4 * i + 3]! }));
    const fromPieces = new Map<number, number>();
    for (const p of pieces) {
      if (!two) assert.equal(p.file, 3);
      assert.ok(vmas.some((v) => p.start * PAGE >= Number(v.start) && (p.start + p.n) * PAGE <= Number(v.end)), 'a piece within one area');
      for (let k = 0; k < p.n; k++) fromPieces.set(p.start - BASE / PAGE + k, p.off + k * PAGE + (p.file === 4 ? 1e9 : 0));
    }
    for (let i = 1; i < pieces.length; i++) assert.ok(pieces[i]!.start >= pieces[i - 1]!.start + pieces[i - 1]!.n);
    const fileOf = (pg: number) => (two && reads.findIndex((r) => pg >= pageOf(r.vaddr) && pg < pageOf(r.vaddr) + r.nrPages) % 2 === 1 ? 1e9 : 0);
    const inside = new Map([...pagesOf(reads)].filter(([pg]) => inAny(pg, vmas)).map(([pg, off]) => [pg, off + fileOf(pg)] as const));
    assert.deepEqual(fromPieces, inside);
    // readsOutside, and splitLazy's reads: each page of the reads outside every area, at its offset.
    const [out] = readsOutside([src], vmas);
    const outside = new Map([...pagesOf(reads)].filter(([pg]) => !inAny(pg, vmas)));
    assert.deepEqual(pagesOf(readObjects(out!.reads)), outside);
    for (const r of readObjects(out!.reads)) assert.ok(r.nrPages > 0 && Number.isInteger(r.nrPages));
    const rest = new Map(split.outside.flatMap((o, h) => [...pagesOf(readObjects(o.reads))].map(([pg, off]) => [pg, off + (h === 1 ? 1e9 : 0)] as const)));
    assert.deepEqual(rest, new Map([...outside].map(([pg, off]) => [pg, off + fileOf(pg)] as const)));
    for (const o of split.outside) for (const r of readObjects(o.reads)) assert.ok(r.nrPages > 0 && Number.isInteger(r.nrPages));
  }), { numRuns: 400 });
});

test('rangesLess() leaves what a page-by-page model leaves', () => {
  fc.assert(fc.property(areas, areas, fc.nat(), (va, ca, shuffle) => {
    const keep = lay(va, shuffle), out = lay(ca, shuffle + 1);
    const left = rangesLess(keep, out);
    const pages = (rs: { start: bigint; end: bigint }[]) => new Set(rs.flatMap((r) => Array.from({ length: pageOf(r.end) - pageOf(r.start) }, (_, k) => pageOf(r.start) + k)));
    const want = [...pages(keep)].filter((pg) => !inAny(pg, out)).sort((a, b) => a - b);
    assert.deepEqual([...pages(left)].sort((a, b) => a - b), want);
    for (let i = 0; i < left.length; i++) {
      assert.ok(left[i]!.start < left[i]!.end, 'no empty range');
      if (i) assert.ok(left[i]!.start >= left[i - 1]!.end, 'in address order, apart');
    }
  }), { numRuns: 300 });
});
