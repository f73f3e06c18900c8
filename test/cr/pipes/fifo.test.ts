// FIFOs opened read-only, write-only and read-write, in one process and across two, with
// their contents, after restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, verifyImages } from '../harness.js';
import { dump } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { FdTypes } from '../../../src/image/gen/stasis/fdinfo_pb.js';

test('FIFOs in all three modes, in one process and across two, keep their flags and contents', async () => {
  const w = new Workload('fifos', compileWorkload('fifos')).start();
  const { images } = await checkpointRestore(w);
  const files = readImage(images, 'files', undefined);
  const fifos = files.filter((f) => f.type === FdTypes.FIFO);
  // f1 three times, f2 twice (reader and the child's writer), f3 and f4 once.
  assert.equal(fifos.length, 7);
  for (const f of fifos) {
    const reg = files.find((x) => x.id === f.fifo?.regfId)?.reg;
    assert.ok(reg && fs.statSync(reg.name).isFIFO(), `FIFO ${f.id} names no REG entry with its path`);
  }
  const data = readImage(images, 'fifo-data', undefined);
  assert.deepEqual(data.map((d) => d.entry.bytes).sort((a, b) => a - b), [1234, 2000, 3000, 4321]);
  assert.ok(data.some((d) => d.entry.size === 128 << 10), 'the 128 KiB capacity was not recorded');
  assert.ok(!fs.existsSync(`${images}/pipes-data.img`));
  w.go();
  assertPassed(w.finish());
});

test('a dump with --leave-running leaves every FIFO and its contents as they were', async () => {
  const w = new Workload('fifos-live', compileWorkload('fifos')).start();
  const images = tmpDir('fifos-live-img');
  await dump({ pid: w.pid, imagesDir: images, leaveRunning: true });
  verifyImages(images);
  w.go();
  assertPassed(w.finish());
});
