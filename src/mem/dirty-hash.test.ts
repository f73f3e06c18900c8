import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPage, HashTracker, PageHashes } from './dirty-hash.js';

const made: string[] = [];
after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const tempDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-hash-'));
  made.push(d);
  return d;
};

test('hashPage tells pages apart that differ in one bit anywhere', () => {
  const buf = Buffer.alloc(8192);
  const h = new Uint32Array(4);
  for (const bit of [0, 7, 8 * 2048 + 3, 8 * 4095 + 7]) {
    buf.fill(0);
    buf[4096 + (bit >> 3)] = 1 << (bit & 7);
    hashPage(buf, 0, h, 0);
    hashPage(buf, 4096, h, 2);
    assert.notDeepEqual([h[0], h[1]], [h[2], h[3]], `bit ${bit}`);
  }
});

test('the hashes a tracker records are found again by page number and contents', () => {
  const dir = tempDir();
  const t = new HashTracker(1, '1', null);
  t.arm();
  const page = Buffer.alloc(4096 * 3);
  for (let i = 0; i < page.length; i++) page[i] = (i * 7 + (i >> 12)) & 0xff;
  const seen = new Uint32Array(6);
  [0, 4096, 8192].forEach((off, i) => hashPage(page, off, seen, 2 * i));
  t.onPage!(100, seen, 0);
  t.onPage!(101, seen, 2);
  t.onPage!(500, seen, 4);
  const rec = t.commit(dir);
  const hashes = PageHashes.read(path.join(dir, rec.hashes!));
  const h = new Uint32Array(2);
  hashPage(page, 4096, h, 0);
  assert.equal(hashes.same(100, h, 0), false);
  assert.equal(hashes.same(101, h, 0), true);
  hashPage(page, 8192, h, 0);
  assert.equal(hashes.same(499, h, 0), false);
  assert.equal(hashes.same(500, h, 0), true);
});

test('PageHashes.read refuses a file that is not a hash file', () => {
  const f = path.join(tempDir(), 'x.bin');
  fs.writeFileSync(f, Buffer.alloc(20));
  assert.throws(() => PageHashes.read(f), /not a page hash file/);
});
