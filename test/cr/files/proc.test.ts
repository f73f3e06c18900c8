// Files of /proc: a file under /proc/PID of a task of the tree is reopened once that task
// exists again, a namespace file of stasis's own namespaces comes back, and a cwd under
// /proc/PID of a process gone since comes back unhashed (a helper held the pid meanwhile).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('a child\'s /proc/PID file, a namespace file and a cwd in a dead process\'s /proc/PID come back pointing where they did', async () => {
  const w = new Workload('procfiles', compileWorkload('procfiles')).start();
  const { images } = await checkpointRestore(w);
  const files = readImage(images, 'files', undefined);
  assert.equal(files.find((f) => f.nsf)?.nsf?.nsCflag, 0x40000000); // CLONE_NEWNET
  const remaps = readImage(images, 'remap-fpath', undefined);
  assert.deepEqual(remaps.map((r) => r.remapType), [2]); // PROCFS
  w.go();
  assertPassed(w.finish());
});
