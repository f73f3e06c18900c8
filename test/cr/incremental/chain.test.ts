// Pre-dumps, a chain of them, and the final dump that writes only what changed: for every
// dirty-tracking backend this kernel has. A workload changes pages between dumps in every
// way we know (its own stores, read(2) into its buffers, mremap, new mappings, mappings over
// old ones, MADV_DONTNEED, copy-on-write of a private file mapping); after restore from the
// last dump every page of its data areas must equal what it was at the final freeze.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, tmpDir, verifyImages, assertPassed, sleepMs, waitFor, REPO } from '../harness.js';
import { preDump, dump, restore } from '../../../src/api/index.js';
import { probeKernel } from '../../../src/sys/index.js';
import { backendProblems } from '../../../src/mem/dirty-open.js';
import type { DirtyBackendName } from '../../../src/mem/dirty.js';
import { readImage } from '../../../src/image/index.js';
import { PE } from '../../../src/image/pagemap-flags.js';
import { hashRegions, restoreSameMemory, fdTable, step, trackersOf, pagemapKinds, uffdWpAreas } from './incr-helpers.js';

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
      await restoreSameMemory(w, dir('dump'), before, fds);
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
    await restoreSameMemory(w, path.join(root, 'b'), before);
  } finally {
    w.kill();
  }
});

test('a final dump that leaves the tree running ends tracking: no tracker, no registration, no fd, the task carries on', { skip: problems.uffd ? `uffd backend unavailable: ${problems.uffd}` : false }, async () => {
  const w = new Workload('incr', compileWorkload('incr'), ['11', '8']).start();
  const root = tmpDir('incr-leave');
  try {
    const fds = fdTable(w.pid);
    await preDump({ pid: w.pid, imagesDir: path.join(root, 'pre'), trackBackend: 'uffd' });
    waitFor('the tracker holding the userfaultfd', () => trackersOf(w.pid).length === 1, 3000);
    assert.ok(uffdWpAreas(w.pid) > 0, 'no area is registered for write-protection');
    step(w, 1);
    const d = await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre', leaveRunning: true });
    assert.ok(d.pagesSkippedParent > 0);
    assert.equal(fs.existsSync(path.join(root, 'pre', 'stasis-track.json')), false, 'the used-up record is still in the pre-dump');
    waitFor('the tracker to go', () => trackersOf(w.pid).length === 0, 3000);
    waitFor('the registrations to go', () => uffdWpAreas(w.pid) === 0, 3000);
    assert.deepEqual(fdTable(w.pid), fds);
    step(w, 2); // it still works
    fs.writeFileSync(w.file('exit'), '');
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});

test('a tracker ends by itself when its task is killed without a final dump', { skip: problems.uffd ? `uffd backend unavailable: ${problems.uffd}` : false }, async () => {
  const w = new Workload('incr', compileWorkload('incr'), ['12', '1']).start();
  try {
    await preDump({ pid: w.pid, imagesDir: tmpDir('incr-orphan'), trackBackend: 'uffd' });
    const tracker = waitFor('the tracker', () => trackersOf(w.pid)[0], 3000);
    // Killed and reaped (a zombie still answers kill(pid, 0), so tail --pid waits for the reap).
    process.kill(w.pid, 'SIGKILL');
    w.finish();
    waitFor('the tracker to exit', () => trackersOf(w.pid).length === 0, 5000);
  } finally {
    w.kill();
  }
});

test('restore refuses a pre-dump, and a dump whose parent is cut short or gone', async () => {
  const w = new Workload('incr', compileWorkload('incr'), ['13', '1']).start();
  const root = tmpDir('incr-bad');
  try {
    await preDump({ pid: w.pid, imagesDir: path.join(root, 'pre'), trackBackend: 'hash' });
    await assert.rejects(restore({ imagesDir: path.join(root, 'pre'), detach: true }), (e: { code?: string }) => e.code === 'E_NO_IMAGE');
    await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre' });
    fs.truncateSync(path.join(root, 'pre', 'pages-1.img'), 4096);
    await assert.rejects(restore({ imagesDir: path.join(root, 'dump'), detach: true }), (e: { code?: string }) => e.code === 'E_TRUNCATED');
    fs.rmSync(path.join(root, 'pre'), { recursive: true });
    await assert.rejects(restore({ imagesDir: path.join(root, 'dump'), detach: true }), (e: { code?: string }) => e.code === 'E_NO_IMAGE');
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a failed restore left a process');
  } finally {
    w.kill();
  }
});

test('a pre-dump with a previous dir that is not an image set fails and leaves the task running untouched', async () => {
  const w = new Workload('incr', compileWorkload('incr'), ['14', '1']).start();
  const root = tmpDir('incr-noparent');
  try {
    const fds = fdTable(w.pid);
    fs.mkdirSync(path.join(root, 'empty'));
    await assert.rejects(preDump({ pid: w.pid, imagesDir: path.join(root, 'pre'), prevImagesDir: '../empty' }), (e: { code?: string }) => e.code === 'E_NO_IMAGE');
    assert.deepEqual(fdTable(w.pid), fds);
    step(w, 1);
    fs.writeFileSync(w.file('exit'), '');
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});

for (const backend of ['uffd', 'hash'] as DirtyBackendName[]) {
  const skip = problems[backend] ? `${backend} backend unavailable: ${problems[backend]}` : false;
  test(`a page the kernel wrote with read(2) is dumped again (${backend})`, { skip }, async () => {
    const w = new Workload('incr', compileWorkload('incr'), ['15', '1']).start();
    const root = tmpDir('incr-read');
    try {
      await preDump({ pid: w.pid, imagesDir: path.join(root, 'pre'), trackBackend: backend });
      // Whole or not at all: the workload may look between a create and a write.
      fs.writeFileSync(w.file('cmd-1.tmp'), 'read');
      fs.renameSync(w.file('cmd-1.tmp'), w.file('cmd-1'));
      waitFor('the read', () => fs.existsSync(w.file('ack-1')));
      const before = hashRegions(w);
      const a = parseInt(fs.readFileSync(w.file('regions'), 'utf8').split(' ')[0]!, 16);
      const page5 = BigInt(a + 5 * 4096);
      await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre' });
      const present = readImage(path.join(root, 'dump'), 'pagemap', w.pid).entries
        .filter((e) => e.flags & PE.PRESENT).some((e) => e.vaddr <= page5 && page5 < e.vaddr + BigInt(e.nrPages) * 4096n);
      assert.ok(present, 'the page read(2) wrote is not in the final dump');
      // ...and not because everything was: the rest of A (256 pages) stayed in the parent.
      const k = pagemapKinds(path.join(root, 'dump'), w.pid);
      assert.ok(k.parent >= 250 && k.present < 20, `${k.present} pages written, ${k.parent} in_parent`);
      await restoreSameMemory(w, path.join(root, 'dump'), before);
    } finally {
      w.kill();
    }
  });
}

test('tracking carries over from a pre-dump run by the stasis command to a dump by another process', { skip: problems.uffd ? `uffd backend unavailable: ${problems.uffd}` : false }, async () => {
  const w = new Workload('incr', compileWorkload('incr'), ['16', '4']).start();
  const root = tmpDir('incr-cli');
  try {
    const fds = fdTable(w.pid);
    // The stasis command in a process of its own, which exits: only the tracker keeps the uffd.
    const out = execFileSync(process.execPath, [path.join(REPO, 'bin/stasis.js'), 'pre-dump', '-t', String(w.pid), '-D', path.join(root, 'pre')], { encoding: 'utf8' });
    assert.match(out, /memory tracked by uffd/);
    assert.deepEqual(fdTable(w.pid), fds);
    step(w, 1);
    const before = hashRegions(w);
    const d = await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre' });
    assert.equal(d.trackBackend, 'uffd');
    assert.ok(d.pagesSkippedParent > 4 * 256 * 0.8, `only ${d.pagesSkippedParent} pages left to the pre-dump`);
    await restoreSameMemory(w, path.join(root, 'dump'), before, fds);
  } finally {
    w.kill();
  }
});

test('a fresh pre-dump of a task an older chain still tracks takes the tracking over', { skip: problems.uffd ? `uffd backend unavailable: ${problems.uffd}` : false }, async () => {
  const w = new Workload('incr', compileWorkload('incr'), ['17', '4']).start();
  const root = tmpDir('incr-again');
  try {
    await preDump({ pid: w.pid, imagesDir: path.join(root, 'old'), trackBackend: 'uffd' });
    const old = waitFor('the first tracker', () => trackersOf(w.pid)[0], 3000);
    await preDump({ pid: w.pid, imagesDir: path.join(root, 'new'), trackBackend: 'uffd' });
    waitFor('one tracker, the new one', () => { const t = trackersOf(w.pid); return t.length === 1 && t[0] !== old; }, 3000);
    step(w, 1);
    const before = hashRegions(w);
    const d = await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../new' });
    assert.ok(d.pagesSkippedParent > 4 * 256 * 0.8, `only ${d.pagesSkippedParent} pages left to the new pre-dump`);
    await restoreSameMemory(w, path.join(root, 'dump'), before);
  } finally {
    w.kill();
  }
});
