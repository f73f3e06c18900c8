import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { writeSums, verifySums, sumFile, sumChunks, StreamSum, SUMS_FILE, SUM_CHUNK } from './image-sums.js';

function dirWith(files: Record<string, Buffer>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-sums-'));
  for (const [n, b] of Object.entries(files)) fs.writeFileSync(path.join(d, n), b);
  return d;
}

test('sums: CRC-32s are written; a changed byte, a truncated file, a missing one are each named', () => {
  const pages = crypto.randomBytes(5 << 20); // over one read chunk
  const d = dirWith({ 'pages-1.img': pages, 'core-1.img': Buffer.from('core') });
  writeSums(d, ['pages-1.img', 'core-1.img'].map((n) => path.join(d, n))); // read again: one CRC-32 each
  const j = JSON.parse(fs.readFileSync(path.join(d, SUMS_FILE), 'utf8'));
  assert.equal(j['stasis-sums'], 3);
  assert.equal(j['chunk-bytes'], SUM_CHUNK);
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
  fs.writeFileSync(path.join(d, SUMS_FILE), JSON.stringify({ 'stasis-sums': 4, files: {} }));
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: /not a stasis sums file of version 1 or 2 or 3/ });
  fs.rmSync(d, { recursive: true });
});

test('sums: a StreamSum of bytes written in order holds one CRC-32 per MiB, as read back from the file; a changed byte is named by its MiB', () => {
  const d = dirWith({});
  const f = path.join(d, 'pages-1.img');
  const fd = fs.openSync(f, 'w');
  const s = new StreamSum();
  const all: Buffer[] = [];
  // Writes of odd sizes across chunk boundaries, to 2 MiB and a bit.
  for (let i = 0; i < 9; i++) {
    const b = crypto.randomBytes(i === 8 ? 1000 : 300_000 + i * 777);
    fs.writeSync(fd, b);
    s.add(b);
    all.push(b);
  }
  fs.closeSync(fd);
  const body = Buffer.concat(all);
  assert.ok(body.length > 2 * SUM_CHUNK);
  const want = [0, 1, 2].map((i) => (zlib.crc32(body.subarray(i * SUM_CHUNK, (i + 1) * SUM_CHUNK)) >>> 0).toString(16).padStart(8, '0')).join('');
  assert.deepEqual(s.sum, { size: body.length, chunks: want });
  assert.deepEqual(sumChunks(f), s.sum);
  assert.equal(sumFile(f).crc32, (zlib.crc32(body) >>> 0).toString(16).padStart(8, '0'));
  // writeSums takes it as it is: a wrong known sum is caught at verify.
  writeSums(d, [f], new Map([[f, { ...s.sum, chunks: `${want.slice(0, 8)}00000000${want.slice(16)}` }]]));
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: new RegExp(`its CRC-32 of bytes ${SUM_CHUNK}-${2 * SUM_CHUNK} differs`) });
  // As many CRC-32s as chunks, or the entry is damage.
  writeSums(d, [f], new Map([[f, { ...s.sum, chunks: want.slice(8) }]]));
  assert.throws(() => verifySums(d), { code: 'E_CORRUPT', message: /not a size and a CRC-32 or CRC-32s per chunk/ });
  writeSums(d, [f], new Map([[f, s.sum]]));
  assert.equal(verifySums(d), 1);
  fs.rmSync(d, { recursive: true });
});
