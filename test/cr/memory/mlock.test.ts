// Locked memory (mlock) of a task that is no longer root: the areas come back locked with
// their bytes (zdtm's mlock_setuid, which CRIU 4.2 fails), and the task keeps its uid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

const MAP_LOCKED = 0x2000;

test('mlocked anonymous and file memory of a task that dropped root comes back locked, with its bytes', async () => {
  const w = new Workload('mlocked', compileWorkload('mlocked')).start();
  const [anon, file] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((a) => BigInt(`0x${a}`));
  const { images } = await checkpointRestore(w);
  const vmas = readImage(images, 'mm', w.pid)[0]!.vmas;
  for (const at of [anon, file]) {
    const v = vmas.find((x) => x.start === at);
    assert.ok(v && v.flags & MAP_LOCKED, `the area at 0x${at!.toString(16)} is not MAP_LOCKED in the image`);
  }
  assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /^VmLck:\s+7[26] kB$/m);
  w.go();
  assertPassed(w.finish());
});
