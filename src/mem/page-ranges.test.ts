import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PageRanges } from './page-ranges.js';

function pieces(r: PageRanges, queries: [number, number][]): [number, number, boolean][] {
  const c = r.cursor();
  const out: [number, number, boolean][] = [];
  for (const [s, e] of queries) c.split(s, e, (a, b, inside) => out.push([a, b, inside]));
  return out;
}

test('PageRanges merges touching and overlapping runs added in order', () => {
  const r = new PageRanges();
  r.add(1, 3);
  r.add(3, 5);
  r.add(4, 6);
  r.add(10, 11);
  assert.deepEqual([...r], [[1, 6], [10, 11]]);
  assert.equal(r.pages, 6);
});

test('PageRanges.add refuses a run before the last one', () => {
  const r = new PageRanges();
  r.add(10, 12);
  assert.throws(() => r.add(2, 3), RangeError);
});

test('RangeCursor.split cuts a query into pieces inside and outside the set, for queries in order', () => {
  const r = PageRanges.from([[20, 30], [2, 5]]);
  assert.deepEqual(pieces(r, [[0, 3], [3, 10], [25, 40]]), [
    [0, 2, false], [2, 3, true], [3, 5, true], [5, 10, false], [25, 30, true], [30, 40, false],
  ]);
});

test('RangeCursor.covers is true only when every page is in the set', () => {
  const c = PageRanges.from([[0, 4], [4, 8], [10, 12]]).cursor();
  assert.equal(c.covers(1, 8), true);
  assert.equal(c.covers(8, 11), false);
  assert.equal(c.covers(10, 12), true);
});

test('addBytes rounds a byte range out to whole pages', () => {
  const r = new PageRanges();
  r.addBytes(4096n, 4096n * 3n + 1n);
  assert.deepEqual([...r], [[1, 4]]);
});
