// Pipes of one process in every layout, with data in flight: restored byte for byte, with
// their fd numbers, flags, capacities and sharing; and left exactly as they were by a dump
// with --leave-running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, verifyImages, leaveRunningThenRestore } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';

const MIB = 1 << 20;
const fdsOf = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
const pat = (k: number, i: number) => (i * 31 + k * 7 + (i >> 8) + (i >> 16)) & 0xff;

/** The data each pipe of the workload holds at the dump, by size (pipe ids are inode numbers). */
const SIZES = [0, 77, 333, 1000, 5000, 6000, 7000, 3 * 4096 + 5, MIB];

function checkPipeData(images: string): void {
  const items = readImage(images, 'pipes-data', undefined);
  assert.deepEqual(items.map((i) => i.entry.bytes).sort((a, b) => a - b), SIZES);
  const big = items.find((i) => i.entry.bytes === MIB)!;
  assert.equal(big.entry.size, MIB);
  for (let i = 0; i < MIB; i++) if (big.payload[i] !== pat(4, i)) assert.fail(`byte ${i} of the 1 MiB pipe's image is ${big.payload[i]}`);
  const files = readImage(images, 'files', undefined).filter((f) => f.pipe);
  assert.equal(files.length, 18, 'one PIPE entry per open file (the dups share theirs)');
}

test('pipes in every fd layout come back with their data, flags, capacity and sharing, and carry on', async () => {
  const w = new Workload('pipes', compileWorkload('pipes')).start();
  const before = fdsOf(w.pid);
  const { images } = await checkpointRestore(w);
  checkPipeData(images);
  assert.deepEqual(fdsOf(w.pid), before);
  w.go();
  assertPassed(w.finish());
});

test('a dump with --leave-running leaves every pipe as it was; the images restore the same pipes', async () => {
  const w = new Workload('pipes-live', compileWorkload('pipes')).start();
  await leaveRunningThenRestore(w, checkPipeData);
});
