// What an images directory looks like from outside: private modes, checksums that only
// --no-verify skips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Workload, compileWorkload, tmpDir, REPO, verifyImages } from '../harness.js';
import { dump } from '../../../src/api/index.js';

const CLI = path.join(REPO, 'bin/stasis.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('a dump makes its images directory 0700 and every file in it 0600', async () => {
  const w = new Workload('modes', compileWorkload('bigheap'), ['1']).start();
  const top = path.join(tmpDir('modes'), 'new');
  const images = path.join(top, 'images');
  await dump({ pid: w.pid, imagesDir: images });
  for (const d of [top, images]) assert.equal(fs.statSync(d).mode & 0o777, 0o700, `${d} has mode ${(fs.statSync(d).mode & 0o777).toString(8)}`);
  verifyImages(images); // every file 0600, every file checksummed
});

test('restore --no-verify skips the checksums: one flipped bit of memory then reaches the task', async () => {
  const w = new Workload('noverify', compileWorkload('bigheap'), ['1']).start();
  const images = tmpDir('noverify-img');
  await dump({ pid: w.pid, imagesDir: images });
  const pages = path.join(images, 'pages-1.img');
  const b = fs.readFileSync(pages);
  b[b.length >> 1] = (b[b.length >> 1] as number) ^ 1;
  fs.writeFileSync(pages, b);

  const refused = cli('restore', '-D', images, '-d');
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /pages-1\.img is damaged.*\[E_CORRUPT\]/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false);

  // Restored and waited for (its exit status is stasis's): it finds its memory changed.
  w.go();
  const r = cli('restore', '-D', images, '--no-verify');
  assert.equal(r.status, 1, r.stderr);
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^FAIL: checksum changed/);
});
