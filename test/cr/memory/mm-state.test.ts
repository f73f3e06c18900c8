// What an address space holds besides its pages: membarrier registrations (per mm), a
// MAP_DROPPABLE area (its contents are not kept) and MADV_WIPEONFORK advice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('membarrier registrations, an empty droppable area and wipe-on-fork advice come back', async (t) => {
  const w = new Workload('mmflags', compileWorkload('mmflags')).start();
  const [drop, , regs] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ');
  if (Number(regs) < 0) {
    w.kill();
    t.skip('this kernel lacks MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3)');
    return;
  }
  const { images } = await checkpointRestore(w);
  const core = readImage(images, 'core', w.pid)[0]!;
  assert.equal(core.tc?.membarrierRegistrationMask, Number(regs));
  const mm = readImage(images, 'mm', w.pid)[0]!;
  const dv = mm.vmas.find((v) => v.start === BigInt(`0x${drop}`));
  assert.equal((dv?.flags ?? 0) & 0x0f, 0x08, 'the droppable area is not MAP_DROPPABLE in the image');
  const smaps = fs.readFileSync(`/proc/${w.pid}/smaps`, 'utf8');
  assert.match(smaps.split(new RegExp(`^${drop}-`, 'm'))[1] ?? '', /VmFlags:.* dp/, 'the restored area is not droppable');
  w.go();
  assertPassed(w.finish());
});

test('a memfd smaller than a page keeps its size and bytes (its last page is dumped whole), and a memfd script still runs with execveat()', async () => {
  const w = new Workload('memfdsmall', compileWorkload('memfdsmall')).start();
  await checkpointRestore(w);
  w.go();
  assertPassed(w.finish());
});
