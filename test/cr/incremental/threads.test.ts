// Threads share one address space: one tracker for the process, injected through the
// leader while every thread is frozen; the restored threads finish their work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, tmpDir, verifyImages, assertPassed } from '../harness.js';
import { preDump, dump, restore } from '../../../src/api/index.js';
import { fdTable, pagemapKinds, withoutInodes } from './incr-helpers.js';

test('a process with six threads pre-dumped and dumped incrementally comes back and its threads finish', async () => {
  const w = new Workload('threads', compileWorkload('threads', ['-pthread'])).start();
  const root = tmpDir('incr-threads');
  try {
    const tids = fs.readdirSync(`/proc/${w.pid}/task`).map(Number).sort((a, b) => a - b);
    const fds = fdTable(w.pid);
    await preDump({ pid: w.pid, imagesDir: path.join(root, 'pre') });
    assert.deepEqual(fdTable(w.pid), fds);
    await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre' });
    const k = pagemapKinds(path.join(root, 'dump'), w.pid);
    // The threads' stacks and the pages they write change between the two; the 1 MiB
    // ballast does not, and stays in the parent.
    assert.ok(k.parent >= 256, `${k.parent} pages in_parent, ${k.present} written`);
    verifyImages(path.join(root, 'dump'));
    await restore({ imagesDir: path.join(root, 'dump'), detach: true });
    assert.deepEqual(fs.readdirSync(`/proc/${w.pid}/task`).map(Number).sort((a, b) => a - b), tids);
    assert.deepEqual(withoutInodes(fdTable(w.pid)), withoutInodes(fds));
    w.go();
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});
