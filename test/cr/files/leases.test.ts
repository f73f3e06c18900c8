// File leases: a read lease, and a write lease being broken down to a read lease, come back
// held by the restored task (its pid in fdinfo, it gets the break signal), with no extra signal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('a read lease and a lease being broken are held again by the restored task, the broken one still breaking', async () => {
  const w = new Workload('leases', compileWorkload('leases')).start();
  const { images } = await checkpointRestore(w);
  const entries = readImage(images, 'file-locks', undefined);
  // FL_LEASE; F_RDLCK, and F_RDLCK | LEASE_BREAKING (the type it is broken to).
  assert.deepEqual(entries.map((e) => `${e.flag}/${e.type} pid ${e.pid === w.pid} fd ${e.fd}`).sort(), ['8/0 pid true fd 10', '8/4 pid true fd 11']);
  w.go();
  assertPassed(w.finish());
});
