// Naming shared open files with few kcmp calls: 10,000 fds over 10 processes (1,000 open
// files, dup'd and inherited) cost at most n*log2(n) calls and come back with the same
// sharing; fds whose generic ids all differ cost none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

function fdIdsOf(images: string, pids: number[]): { fds: number; objects: number } {
  let fds = 0;
  const ids = new Set<number>();
  for (const pid of pids) {
    const ids1 = readImage(images, 'ids', pid)[0]!;
    for (const d of readImage(images, 'fdinfo', ids1.filesId)) {
      fds++;
      ids.add(d.id);
    }
  }
  return { fds, objects: ids.size };
}

test('10,000 fds over 10 processes are told apart in at most n*log2(n) kcmp calls, reported in the dump, and share as before after restore', async () => {
  const w = new Workload('files-many', compileWorkload('files-many'), ['10', '100', '90', '500']).start();
  const { images, d } = await checkpointRestore(w);
  const { fds, objects } = fdIdsOf(images, d.pids);
  // 10 x (100 inherited files x 5 fds + 500 fds over 90 files of its own) + stdin/out/err.
  assert.equal(fds, 10 * 1000 + 30);
  assert.equal(objects, 100 + 10 * 90 + 3);
  const stats = readImage(images, 'stats', 'dump')[0]!.dump!;
  assert.equal(stats.kcmpCalls, BigInt(d.kcmpCalls));
  assert.ok(d.kcmpCalls <= fds * Math.log2(fds), `${d.kcmpCalls} kcmp calls for ${fds} fds`);
  // Every fd after the first of its file costs about one call: its file is alone under its generic id.
  assert.ok(d.kcmpCalls >= fds - objects, `${d.kcmpCalls} kcmp calls`);
  process.stderr.write(`note: ${fds} fds, ${objects} open files: ${d.kcmpCalls} kcmp calls\n`);
  w.go();
  assertPassed(w.finish(60000));
});

test('fds whose generic ids all differ cost no kcmp call', async () => {
  const w = new Workload('files-distinct', compileWorkload('files-many'), ['distinct', '1000']).start();
  const { images, d } = await checkpointRestore(w);
  assert.equal(d.kcmpCalls, 0);
  assert.equal(readImage(images, 'stats', 'dump')[0]!.dump!.kcmpCalls, 0n);
  assert.equal(fdIdsOf(images, d.pids).objects, 1003);
  w.go();
  assertPassed(w.finish());
});
