// Guard regions (MADV_GUARD_INSTALL, Linux 6.13) come back as guards, as CRIU 4.2 writes
// them (a VMA_AREA_GUARD entry per run); their pages are not read at dump (they hold nothing
// and reading them fails).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, pagemapEntries } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

const GUARD = 1 << 16;

test('guard regions of an anonymous and a private file mapping fault again after restore, the other pages hold their bytes', async (t) => {
  const w = new Workload('guards', compileWorkload('guards'));
  try {
    w.start();
  } catch (err) {
    const r = w.finish();
    if (r.exit.kind === 'exited' && r.exit.code === 77) return t.skip('this kernel has no guard regions (MADV_GUARD_INSTALL)');
    throw err;
  }
  const [a, f] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((x) => BigInt(`0x${x}`));
  const { images } = await checkpointRestore(w);
  const guards = readImage(images, 'mm', w.pid)[0]!.vmas.filter((v) => v.status === GUARD).map((v) => [v.start, v.end]);
  assert.deepEqual(guards, [[a! + 4096n, a! + 8192n], [f! + 4096n, f! + 12288n]].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)));
  // The restored task's pagemap marks the same pages (bit 58).
  const marked = (addr: bigint) => (pagemapEntries(w.pid, addr)[0]! & (1n << 58n)) !== 0n;
  assert.deepEqual([a!, a! + 4096n, a! + 8192n, f!, f! + 4096n, f! + 8192n].map(marked), [false, true, false, false, true, true]);
  w.go();
  assertPassed(w.finish());
});
