import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { writeSums, verifySums, sumFile, StreamSum, SUMS_FILE } from './image-sums.js';

function dirWith(files: Record<string, Buffer>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-sums-'));
  for (const [n, b] of Object.entries(files)) fs.writeFileSync(path.join(d, n), b);
  return d;
}

test('sums: CRC-32s are written; a changed byte, a truncated file, a missing one are each named', () => {
  const pages = crypto.randomBytes(5 << 20); // over one read chunk
  const d = dirWith({ 'pages-1.img': pages, 'core-1.img': Buffer.from('core') });
  writeSums(d, ['pages-1.img', 'core-1.img'].map((n) => path.join(d, n)));
  const j = JSON.parse(fs.readFileSync(path.join(d, SUMS_FILE), 'utf8'));
  assert.equal(j['stasis-sums'], 2);
  assert.match(j.files['pages-1.img'].crc32, /^[0-9a-f]{8}$/);
  assert.equal(verifySums(d), 2);
  const flipped = Buffer.from(pages);
  flipped[(4 << 20) + 123]! ^= 1; // in the second chunk
  fs.writeFileSync(path.join(d, 'pages-1.img'), flipped);
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: /pages-1\.img is damaged: its CRC-32 differs/ });
  fs.writeFileSync(path.join(d, 'pages-1.img'), pages.subarray(0, 100));
  assert.throws(() => verifySums(d), { code: 'E_TRUNCATED' });
  fs.rmSync(path.join(d, 'pages-1.img'));
  assert.throws(() => verifySums(d), { code: 'E_NO_IMAGE' });
  fs.rmSync(d, { recursive: true });
});

test('sums: a version 1 set (SHA-256s, image format 4 to 6) still verifies, and its damage is found', () => {
  const body = crypto.randomBytes(10000);
  const d = dirWith({ 'pages-1.img': body });
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  fs.writeFileSync(path.join(d, SUMS_FILE), JSON.stringify({ 'stasis-sums': 1, files: { 'pages-1.img': { size: body.length, sha256: sha } } }));
  assert.equal(verifySums(d), 1);
  body[7]! ^= 0x80;
  fs.writeFileSync(path.join(d, 'pages-1.img'), body);
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: /its SHA-256 differs/ });
  // A version 2 entry in a version 1 file (or the reverse) is damage, not a sum to skip.
  fs.writeFileSync(path.join(d, SUMS_FILE), JSON.stringify({ 'stasis-sums': 1, files: { 'pages-1.img': { size: body.length, crc32: '00000000' } } }));
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: /not a size and a SHA-256/ });
  fs.writeFileSync(path.join(d, SUMS_FILE), JSON.stringify({ 'stasis-sums': 3, files: {} }));
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: /not a stasis sums file of version 1 or 2/ });
  fs.rmSync(d, { recursive: true });
});

test('sums: a StreamSum of bytes written in order is the sum read back from the file', () => {
  const d = dirWith({});
  const f = path.join(d, 'pages-1.img');
  const fd = fs.openSync(f, 'w');
  const s = new StreamSum();
  for (let i = 0; i < 7; i++) {
    const b = crypto.randomBytes(1000 + i * 777);
    fs.writeSync(fd, b);
    s.add(b);
  }
  fs.closeSync(fd);
  assert.deepEqual(s.sum, sumFile(f));
  // writeSums takes it as it is: a wrong known sum is caught at verify.
  writeSums(d, [f], new Map([[f, { ...s.sum, crc32: '00000000' }]]));
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT' });
  writeSums(d, [f], new Map([[f, s.sum]]));
  assert.equal(verifySums(d), 1);
  fs.rmSync(d, { recursive: true });
});
