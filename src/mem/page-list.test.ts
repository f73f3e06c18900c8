import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PageList, readObjects, readsFrom, runsEnd, sortedByOffset } from './page-list.js';

test('PageList grows past its capacity; sortedByOffset() orders reads by file offset, and gives sorted ones back as they are', () => {
  const list = new PageList(2);
  // 100 reads of 1-3 pages, one page apart, whose file offsets run backwards.
  for (let i = 0; i < 100; i++) list.push(0x7f0000000 + 4 * i, 1 + (i % 3), (99 - i) * 3 * 4096);
  const r = list.done();
  assert.equal(r.n, 100);
  assert.equal(r.page.length, 100);
  const by = sortedByOffset(r);
  assert.notEqual(by, r);
  const objs = readObjects(by);
  for (let i = 1; i < objs.length; i++) assert.ok(objs[i]!.off > objs[i - 1]!.off);
  // The same reads, each with its own page count and address.
  assert.deepEqual(new Set(objs.map((o) => `${o.vaddr}:${o.nrPages}:${o.off}`)), new Set(readObjects(r).map((o) => `${o.vaddr}:${o.nrPages}:${o.off}`)));
  assert.equal(sortedByOffset(by), by);
  // Objects and back; the end of the last run.
  assert.deepEqual(readObjects(readsFrom(objs)), objs);
  assert.equal(runsEnd(r), (0x7f0000000 + 4 * 99 + 1) * 4096);
  assert.equal(runsEnd(new PageList(0).done()), 0);
});
