// Pre-dumps, a chain of them, and the final dump that writes only what changed: for every
// dirty-tracking backend this kernel has. A workload changes pages between dumps in every
// way we know (its own stores, read(2) into its buffers, mremap, new mappings, mappings over
// old ones, MADV_DONTNEED, copy-on-write of a private file mapping); after restore from the
// last dump every page of its data areas must equal what it was at the final freeze.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, tmpDir, verifyImages, assertPassed, sleepMs } from '../harness.js';
import { preDump, dump, restore } from '../../../src/api/index.js';
import { probeKernel } from '../../../src/sys/index.js';
import { backendProblems } from '../../../src/mem/dirty-open.js';
import type { DirtyBackendName } from '../../../src/mem/dirty.js';
import { hashRegions, assertSameMemory, fdTable, step, trackersOf, pagemapKinds } from './incr-helpers.js';

const problems = backendProblems(probeKernel());
const MIB = 32; // region A: 8192 pages

for (const backend of ['uffd', 'soft-dirty', 'hash'] as DirtyBackendName[]) {
  const skip = problems[backend] ? `${backend} backend unavailable: ${problems[backend]}` : false;
  test(`three chained pre-dumps and a dump tracked by ${backend} restore every page as it was at the final freeze`, { skip }, async () => {
    const w = new Workload('incr', compileWorkload('incr'), ['7', String(MIB)]).start();
    const root = tmpDir(`incr-${backend}`);
    const dir = (n: string) => path.join(root, n);
    try {
      const fds = fdTable(w.pid);
      const p1 = await preDump({ pid: w.pid, imagesDir: dir('pre1'), trackBackend: backend });
      assert.equal(p1.trackBackend, backend);
      assert.ok(p1.pagesWritten >= MIB * 256, `pre-dump 1 wrote ${p1.pagesWritten} pages`);
      assert.deepEqual(fdTable(w.pid), fds, 'the task sees another fd after the pre-dump');
      let prev = 'pre1';
      for (const k of [1, 2]) {
        step(w, k);
        const p = await preDump({ pid: w.pid, imagesDir: dir(`pre${k + 1}`), prevImagesDir: `../${prev}` });
        assert.equal(p.trackBackend, backend);
        assert.ok(p.pagesSkippedParent > MIB * 256 * 0.8, `pre-dump ${k + 1} left only ${p.pagesSkippedParent} pages to its parent`);
        assert.ok(p.pagesWritten < MIB * 256 * 0.1, `pre-dump ${k + 1} wrote ${p.pagesWritten} pages`);
        assert.deepEqual(fdTable(w.pid), fds);
        prev = `pre${k + 1}`;
      }
      step(w, 3);
      const before = hashRegions(w);
      const d = await dump({ pid: w.pid, imagesDir: dir('dump'), prevImagesDir: `../${prev}`, trackMem: true });
      assert.equal(fs.readlinkSync(path.join(dir('dump'), 'parent')), '../pre3');
      const kinds = pagemapKinds(dir('dump'), w.pid);
      assert.ok(kinds.parent > MIB * 256 * 0.8, `only ${kinds.parent} pages are in_parent`);
      assert.ok(d.pagesWritten < MIB * 256 * 0.1, `the final dump wrote ${d.pagesWritten} of ${kinds.parent + kinds.present} pages`);
      assert.equal(d.pagesSkippedParent, kinds.parent);
      for (const n of ['pre1', 'pre2', 'pre3', 'dump']) verifyImages(dir(n));
      sleepMs(50);
      assert.deepEqual(trackersOf(w.pid), [], 'a tracker outlived the final dump');
      const r = await restore({ imagesDir: dir('dump'), detach: true });
      assert.equal(r.pid, w.pid);
      assertSameMemory(before, hashRegions(w));
      assert.deepEqual(fdTable(w.pid), fds, 'the restored task has other fds');
      fs.writeFileSync(w.file('exit'), '');
      assertPassed(w.finish());
    } finally {
      w.kill();
    }
  });
}

test('a dump without a previous dump refuses nothing and restores from itself', async () => {
  // --track-mem on a first dump (as CRIU): tracking starts, the next dump can chain to it.
  const w = new Workload('incr', compileWorkload('incr'), ['9', '8']).start();
  const root = tmpDir('incr-first');
  try {
    const a = await dump({ pid: w.pid, imagesDir: path.join(root, 'a'), trackMem: true, leaveRunning: true });
    assert.equal(a.pagesSkippedParent, 0);
    assert.ok(a.trackBackend);
    step(w, 1);
    const before = hashRegions(w);
    const b = await dump({ pid: w.pid, imagesDir: path.join(root, 'b'), prevImagesDir: '../a' });
    assert.ok(b.pagesSkippedParent > 0, 'the second dump left nothing to the first');
    verifyImages(path.join(root, 'b'));
    await restore({ imagesDir: path.join(root, 'b'), detach: true });
    assertSameMemory(before, hashRegions(w));
    fs.writeFileSync(w.file('exit'), '');
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});
