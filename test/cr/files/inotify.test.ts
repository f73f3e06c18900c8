// inotify: an instance watching a directory and a file comes back at its fd with the same
// watch descriptors (wds freed before the dump stay unused), and reports events with them;
// one with events queued is refused, and keeps running with its events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('an inotify instance watching a directory and a file reports new events with the same wds after restore', async () => {
  const w = new Workload('inotify', compileWorkload('inotify')).start();
  const [fd, dirWd, fileWd] = fs.readFileSync(w.file('wds'), 'utf8').trim().split(' ').map(Number);
  assert.deepEqual([dirWd, fileWd], [2, 4]);
  const { images } = await checkpointRestore(w);
  const ify = readImage(images, 'files', undefined).find((f) => f.ify)?.ify;
  assert.ok(ify, 'no inotify entry in files.img');
  assert.deepEqual(ify.wd.map((x) => [x.wd, x.mask]), [[4, 0x2], [2, 0x100]]); // IN_MODIFY, IN_CREATE; fdinfo lists newest first
  assert.equal(fs.readlinkSync(`/proc/${w.pid}/fd/${fd}`), 'anon_inode:inotify');
  const watches = fs.readFileSync(`/proc/${w.pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify'));
  assert.deepEqual(watches.map((l) => /wd:(\w+)/.exec(l)?.[1]).sort(), ['2', '4']);
  w.go();
  assertPassed(w.finish());
});

test('an inotify instance with events queued fails the dump, and keeps its events', async () => {
  const w = new Workload('inotify', compileWorkload('inotify'), ['queued']).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [/inotify fd \d+ of pid \d+: \d+ bytes of events are queued/]);
  w.go();
  assertPassed(w.finish());
});
