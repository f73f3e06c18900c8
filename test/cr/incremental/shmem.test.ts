// Shared memory in incremental dumps: pages are compared with the parent's copy, so a write
// that no page table shows any more (map, write, unmap between dumps) is not missed, and only
// the changed pages are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, tmpDir, verifyImages, assertPassed } from '../harness.js';
import { preDump, dump, restore } from '../../../src/api/index.js';
import { readImage, pagemapCount } from '../../../src/image/index.js';
import { PE } from '../../../src/image/pagemap-flags.js';
import { step } from './incr-helpers.js';

function shmemKinds(dir: string): { present: number; parent: number } {
  const files = fs.readdirSync(dir).filter((f) => /^pagemap-shmem-\d+\.img$/.test(f));
  assert.equal(files.length, 1, `shared memory pagemaps in ${dir}: ${files.join(', ')}`);
  const id = Number(/\d+/.exec(files[0]!)![0]);
  let present = 0, parent = 0;
  for (const e of readImage(dir, 'shmem-pagemap', id).entries) {
    if (e.flags & PE.PARENT) parent += pagemapCount(e);
    if (e.flags & PE.PRESENT) present += pagemapCount(e);
  }
  return { present, parent };
}

test('shared memory mapped, written and unmapped between a pre-dump and a dump keeps the write, and only changed pages are written', async () => {
  const w = new Workload('incr-shmem', compileWorkload('incr-shmem')).start();
  const root = tmpDir('incr-shmem');
  try {
    await preDump({ pid: w.pid, imagesDir: path.join(root, 'pre') });
    verifyImages(path.join(root, 'pre'));
    assert.deepEqual(shmemKinds(path.join(root, 'pre')), { present: 16, parent: 0 });
    step(w, 1);
    const d = await dump({ pid: w.pid, imagesDir: path.join(root, 'dump'), prevImagesDir: '../pre' });
    verifyImages(path.join(root, 'dump'));
    assert.deepEqual(shmemKinds(path.join(root, 'dump')), { present: 2, parent: 14 }, 'pages 1 and 6 changed, no other');
    assert.equal(d.shmemPagesWritten, 2);
    await restore({ imagesDir: path.join(root, 'dump'), detach: true });
    w.go();
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});
