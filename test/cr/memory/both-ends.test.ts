// A restore fills a task's memory from both ends once there is enough of it (address-space.ts,
// fillBothEnds): the task's own preadv from the front while stasis writes pieces from the
// back. Every page must land once and in its place, whatever the layout: many runs, areas
// read-only or PROT_NONE once restored, holes and dropped pages that read as zeroes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, assertPassed, tmpDir, copyWithPagesByteFlipped } from '../harness.js';
import { dump, restoreSync } from '../../../src/api/index.js';
import { StasisError } from '../../../src/errors.js';

test('memory filled from both ends comes back page for page: many runs, read-only and PROT_NONE areas, holes and dropped pages as zeroes; the task read only part of it itself; a damaged byte at either end fails the restore', async () => {
  const w = new Workload('bothends', compileWorkload('bothends')).start();
  const images = tmpDir('both-ends-img');
  await dump({ pid: w.pid, imagesDir: images });
  const pages = fs.statSync(path.join(images, 'pages-1.img')).size;
  assert.ok(pages > 64 << 20, `pages-1.img holds ${pages} bytes, not enough to be filled from both ends`);
  // A flipped byte is found wherever it is, in the pieces stasis writes from the back as in
  // what the task reads from the front: the restore fails before the tree runs (the checking
  // thread's verdict comes first), and leaves no process behind.
  const MiB = 1 << 20;
  for (const at of [pages - 1, pages - 3 * MiB - 5, 7]) {
    const { dir: bad } = copyWithPagesByteFlipped(images, 'both-ends-bad', at, 0x20);
    const chunk = Math.floor(at / MiB) * MiB;
    assert.throws(() => restoreSync({ imagesDir: bad, detach: true }), (e: unknown) => e instanceof StasisError && e.code === 'E_CORRUPT' &&
      e.message.includes(`pages-1.img is damaged: its CRC-32 of bytes ${chunk}-${Math.min(chunk + MiB, pages)} differs`), `byte ${at}`);
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a process was left behind');
    fs.rmSync(bad, { recursive: true });
  }
  const lines: string[] = [];
  const keep = (m: string) => void lines.push(m);
  const r = restoreSync({ imagesDir: images, detach: true, log: { level: 4, error: keep, warn: keep, info: keep, debug: keep } });
  assert.equal(r.pid, w.pid);
  // The task's preadv calls (run with stasis's pieces beside them) read less than the pages file
  // holds: stasis wrote the rest, and the workload finds every word in its place.
  const log = lines.join('\n');
  const byTask = [...log.matchAll(/: preadv\([^)]*\) = 0x([0-9a-f]+) \(pumped\)/g)].reduce((n, m) => n + parseInt(m[1]!, 16), 0);
  assert.ok(byTask > 0, 'no preadv ran beside stasis');
  assert.ok(byTask < pages - (8 << 20), `the task read ${byTask} of ${pages} bytes itself: stasis wrote (almost) nothing`);
  w.go();
  assertPassed(w.finish());
});
