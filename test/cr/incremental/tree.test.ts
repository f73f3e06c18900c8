// A process tree pre-dumped and then dumped on top: every live task gets its own tracking
// (one userfaultfd per address space), and the restored tree works on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, tmpDir, verifyImages, assertPassed, waitFor } from '../harness.js';
import { preDump, dump, restore } from '../../../src/api/index.js';
import { pagemapKinds, trackersOf, fdTable } from './incr-helpers.js';

test('a tree pre-dumped and dumped incrementally comes back and runs on', async () => {
  const w = new Workload('tree', compileWorkload('tree')).start();
  const root = tmpDir('incr-tree');
  try {
    const p = await preDump({ pid: w.pid, imagesDir: path.join(root, 'pre') });
    assert.equal(p.pids.length, 4, `pre-dumped ${p.pids.join(', ')}`); // the zombie has no memory
    const fds = p.pids.map(fdTable);
    if (p.trackBackend === 'uffd') for (const pid of p.pids) waitFor(`the tracker of pid ${pid}`, () => trackersOf(pid).length === 1, 3000);
    const d = await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre' });
    for (const pid of p.pids) {
      const k = pagemapKinds(path.join(root, 'dump'), pid);
      assert.ok(k.parent > k.present, `pid ${pid}: ${k.parent} pages in_parent, ${k.present} written`);
    }
    assert.ok(d.pagesSkippedParent > 0);
    verifyImages(path.join(root, 'pre'));
    verifyImages(path.join(root, 'dump'));
    await restore({ imagesDir: path.join(root, 'dump'), detach: true });
    assert.deepEqual(p.pids.map(fdTable), fds);
    w.go();
    assertPassed(w.finish());
    assert.ok(fs.existsSync(w.file('report-3')));
  } finally {
    w.kill();
  }
});
