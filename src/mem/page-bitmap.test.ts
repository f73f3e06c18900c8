import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PageBitmap } from './page-bitmap.js';

test('PageBitmap.runs() gives the set ranges across word boundaries as byte offsets', () => {
  const b = new PageBitmap(100);
  b.setRange(3, 2);
  b.setRange(30, 40);
  b.setRange(99, 5);
  assert.deepEqual(b.runs(), [
    { vaddr: 3n * 4096n, nrPages: 2 },
    { vaddr: 30n * 4096n, nrPages: 40 },
    { vaddr: 99n * 4096n, nrPages: 1 },
  ]);
  assert.equal(b.count(), 43);
  assert.equal(b.test(69), true);
  assert.equal(b.test(70), false);
});

test('PageBitmap.or() and and() combine used and dirty bitmaps page by page', () => {
  const used = new PageBitmap(64), dirty = new PageBitmap(64);
  used.setRange(0, 10);
  dirty.setRange(5, 20);
  const both = new PageBitmap(64);
  both.or(used);
  both.and(dirty);
  assert.deepEqual(both.runs(), [{ vaddr: 5n * 4096n, nrPages: 5 }]);
  used.or(dirty);
  assert.deepEqual(used.runs(), [{ vaddr: 0n, nrPages: 25 }]);
});
