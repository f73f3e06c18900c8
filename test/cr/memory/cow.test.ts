// Pages shared copy-on-write across fork stay shared after restore (CRIU's premapped,
// inherited private areas), and each task still reads its own bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';

const NPAGES = 64;

/** The page frame of each page of the area in pid (0 where none is mapped). */
function frames(pid: number, area: bigint): bigint[] {
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const b = Buffer.alloc(NPAGES * 8);
    fs.readSync(fd, b, 0, b.length, Number((area / 4096n) * 8n));
    return Array.from({ length: NPAGES }, (_, i) => {
      const e = b.readBigUInt64LE(i * 8);
      return e >> 63n ? e & ((1n << 55n) - 1n) : 0n;
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Which pages two tasks share: 's' same frame, '.' different, '-' none in one of them. */
function sharing(a: bigint[], b: bigint[]): string {
  return a.map((x, i) => (x === 0n || b[i] === 0n ? '-' : x === b[i] ? 's' : '.')).join('');
}

test('pages shared copy-on-write by a parent, its child and grandchild are shared again after restore', async () => {
  const w = new Workload('cowtree', compileWorkload('cowtree')).start();
  const [addr, child] = fs.readFileSync(w.file('area'), 'utf8').trim().split(' ');
  const grandchild = Number(fs.readFileSync(w.file('grandchild'), 'utf8'));
  const area = BigInt(`0x${addr}`);
  const pids = [w.pid, Number(child), grandchild];
  const before = pids.map((p) => frames(p, area));
  const parentChild = sharing(before[0]!, before[1]!), childGrand = sharing(before[1]!, before[2]!);
  // The child rewrote page 1 and dropped page 2, the grandchild rewrote page 3.
  assert.equal(parentChild, `s.-${'s'.repeat(NPAGES - 3)}`);
  assert.equal(childGrand, `s.-.${'s'.repeat(NPAGES - 4)}`.replace(/^s\./, 'ss'));
  await checkpointRestore(w);
  const after = pids.map((p) => frames(p, area));
  assert.equal(sharing(after[0]!, after[1]!), parentChild, 'parent and child');
  assert.equal(sharing(after[1]!, after[2]!), childGrand, 'child and grandchild');
  w.go();
  assertPassed(w.finish());
});
