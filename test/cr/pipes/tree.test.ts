// Pipes shared by the processes of a tree: one pipe object, several holders, after restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('a pipe split between a parent and two children, and one shared by fork, come back as one pipe each', async () => {
  const w = new Workload('pipetree', compileWorkload('pipetree')).start();
  const [c1, c2] = fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number) as [number, number];
  const ino = (pid: number, fd: number) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  assert.equal(ino(c1, 10), ino(w.pid, 13));
  const { images, d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [w.pid, c1, c2].sort());
  // Four open files (P's two ends, Q's two), two pipes, each pipe's data once.
  assert.equal(readImage(images, 'files', undefined).filter((f) => f.pipe).length, 4);
  assert.deepEqual(readImage(images, 'pipes-data', undefined).map((i) => i.entry.bytes).sort((a, b) => a - b), [1500, 3000]);
  assert.equal(ino(c1, 10), ino(w.pid, 13));
  assert.equal(ino(c2, 40), ino(c1, 10));
  assert.equal(ino(c1, 11), ino(w.pid, 12));
  w.go();
  assertPassed(w.finish());
});
