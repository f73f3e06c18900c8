// Unix sockets whose files were removed (test/workloads/unixremoved.c): a listener in a
// directory removed since, with a connection accepted and one not, a datagram socket whose
// path now holds a regular file, a socket bound to a relative name from another directory.
// The images mark them deleted (CRIU's UnixSkEntry.deleted); after restore each keeps its
// name, its queue and its peers, and the paths are as they were: removed, or the other
// file's, with nothing of stasis's left beside them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, checkpointRestore, leaveRunningThenRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('Unix sockets whose files were removed come back bound to their names, the paths left as they were', async () => {
  const w = new Workload('unixremoved', compileWorkload('unixremoved')).start();
  const { images } = await checkpointRestore(w);
  const usks = readImage(images, 'files', undefined).flatMap((f) => (f.usk ? [f.usk] : []));
  const deleted = usks.filter((u) => u.deleted).map((u) => Buffer.from(u.name).toString()).sort();
  assert.deepEqual(deleted, [w.file('a/l.sock'), w.file('d.sock'), 'r.sock'].sort());
  assert.equal(usks.find((u) => Buffer.from(u.name).toString() === 'r.sock' && u.deleted)?.nameDir, w.file('sub'));
  w.go();
  assertPassed(w.finish());
  assert.deepEqual(fs.readdirSync(w.dir).filter((f) => f.includes('stasis')), [], 'nothing of the restore is left beside the paths');
  assert.deepEqual(fs.readdirSync(path.join(w.dir, 'sub')), []);
});

test('a dump that leaves the tree running leaves sockets whose files were removed as they were', async () => {
  const w = new Workload('unixremoved-lr', compileWorkload('unixremoved')).start();
  await leaveRunningThenRestore(w);
});
