// The CRC-32s of pages files are checked while restore builds the tree: big ones on another
// thread (sum-check.ts), smaller ones by restore's own thread while the tasks read their pages
// (SumsAlongside): a damaged byte must still stop the restore before the tree runs, with
// nothing left behind, and an undamaged set must restore exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { Workload, compileWorkload, assertPassed, tmpDir, REPO, copyWithLastPageByteFlipped } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';

const CLI = path.join(REPO, 'bin/stasis.js');

test('a big pages file summed at dump beside the copy has its true CRC-32; a flipped bit in it (summed beside the restore) fails it with E_CORRUPT before the tree runs; the intact set restores exactly', async () => {
  // 96 MiB: above the 32 MiB from which the sum is checked on the other thread.
  const w = new Workload('bigheap', compileWorkload('bigheap'), ['96']).start();
  const images = tmpDir('page-sums-img');
  await dump({ pid: w.pid, imagesDir: images });
  const pagesFile = path.join(images, 'pages-1.img');
  assert.ok(fs.statSync(pagesFile).size >= 96 << 20);
  // Summed at dump on another thread, buffer by buffer (RingSum): the same CRC-32 per MiB as the file's, read again.
  const sums = JSON.parse(fs.readFileSync(path.join(images, 'stasis-sums.json'), 'utf8')) as { files: Record<string, { size: number; chunks: string }> };
  const body = fs.readFileSync(pagesFile), MiB = 1 << 20;
  const chunks = Array.from({ length: Math.ceil(body.length / MiB) }, (_, i) => (zlib.crc32(body.subarray(i * MiB, (i + 1) * MiB)) >>> 0).toString(16).padStart(8, '0')).join('');
  assert.deepEqual(sums.files['pages-1.img'], { size: body.length, chunks });
  // The very last byte: the checking thread reaches it last, after the tasks exist.
  const { dir: bad, at } = copyWithLastPageByteFlipped(images, 'page-sums-bad');
  const r = spawnSync(process.execPath, [CLI, 'restore', '-D', bad, '-d', '-v3', '-o', 'restore.log'], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`pages-1\\.img is damaged: its CRC-32 of bytes ${Math.floor(at / MiB) * MiB}-${at + 1} differs from the one written with it \\[E_CORRUPT\\]`));
  // It was checked beside the restore (so this test proves the deferred path), and nothing is left.
  assert.match(fs.readFileSync(path.join(bad, 'restore.log'), 'utf8'), /1 pages file\(s\) being checked meanwhile/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a process was left behind');
  const ok = await restore({ imagesDir: images, detach: true });
  assert.equal(ok.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});

test('a pages file below that size is summed through mapped windows of the page cache by restore\'s own thread while the task reads it: a flipped bit in its last window fails the restore before the tree runs, and a byte cut off its end before any task exists; the intact set restores exactly', async () => {
  // 20 MiB: ten 2 MiB windows, summed on restore's own thread while the task's preadv runs.
  const w = new Workload('bigheap', compileWorkload('bigheap'), ['20']).start();
  const images = tmpDir('page-sums-mapped-img');
  await dump({ pid: w.pid, imagesDir: images });
  const size = fs.statSync(path.join(images, 'pages-1.img')).size, MiB = 1 << 20;
  assert.ok(size > 16 * MiB && size < 32 * MiB, `pages-1.img holds ${size} bytes`);
  const { dir: bad, at } = copyWithLastPageByteFlipped(images, 'page-sums-mapped-bad');
  const r = spawnSync(process.execPath, [CLI, 'restore', '-D', bad, '-d', '-v3', '-o', 'restore.log'], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`pages-1\\.img is damaged: its CRC-32 of bytes ${Math.floor(at / MiB) * MiB}-${at + 1} differs from the one written with it \\[E_CORRUPT\\]`));
  const log = fs.readFileSync(path.join(bad, 'restore.log'), 'utf8');
  assert.match(log, /1 checked while the tasks read their pages/);
  assert.doesNotMatch(log, /being checked meanwhile|tree restored and running/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a process was left behind');
  fs.truncateSync(path.join(bad, 'pages-1.img'), size - 1);
  const t = spawnSync(process.execPath, [CLI, 'restore', '-D', bad, '-d', '-v3', '-o', 'restore2.log'], { encoding: 'utf8' });
  assert.equal(t.status, 1, t.stderr);
  assert.match(t.stderr, /pages-1\.img is damaged: it holds \d+ bytes, \d+ were written \[E_TRUNCATED\]/);
  assert.doesNotMatch(fs.readFileSync(path.join(bad, 'restore2.log'), 'utf8'), /restoring pid/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a process was left behind');
  const ok = await restore({ imagesDir: images, detach: true });
  assert.equal(ok.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});
