// fanotify: a group with inode marks (masks, an ignored mask surviving modification) comes
// back with the same marks and reports new events; one with events queued is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('a fanotify group with inode marks comes back with the same marks, masks and flags, and reports new events', async () => {
  const w = new Workload('fanotify', compileWorkload('fanotify')).start();
  const { images } = await checkpointRestore(w);
  const ffy = readImage(images, 'files', undefined).find((f) => f.ffy)?.ffy;
  assert.ok(ffy, 'no fanotify entry in files.img');
  assert.deepEqual(ffy.mark.map((m) => [m.type, m.mask, m.ignoredMask, m.mflags]).sort(), [[1, 0xa, 0, 0], [1, 0x20, 0x2, 0x40]]);
  w.go();
  assertPassed(w.finish());
});

test('a fanotify group with events queued fails the dump, and keeps its events', async () => {
  const w = new Workload('fanotify-queued', compileWorkload('fanotify'), ['queued']).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [/fanotify fd 10 of pid \d+: \d+ bytes of events are queued on it/]);
  w.go();
  assertPassed(w.finish());
});
