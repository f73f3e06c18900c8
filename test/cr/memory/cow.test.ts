// Pages shared copy-on-write across fork stay shared after restore (CRIU's premapped,
// inherited private areas), and each task still reads its own bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { dump } from '../../../src/api/index.js';
import { criu, criuWorks } from '../interop/criu-tool.js';
import { setChildSubreaper } from '../../../src/sys/index.js';

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

/** The cowtree workload started, its area and pids, and how its pages are shared before the dump. */
function startTree(name: string): { w: Workload; area: bigint; pids: number[]; parentChild: string; childGrand: string } {
  const w = new Workload(name, compileWorkload('cowtree')).start();
  const [addr, child] = fs.readFileSync(w.file('area'), 'utf8').trim().split(' ');
  const grandchild = Number(fs.readFileSync(w.file('grandchild'), 'utf8'));
  const area = BigInt(`0x${addr}`);
  const pids = [w.pid, Number(child), grandchild];
  const before = pids.map((p) => frames(p, area));
  const parentChild = sharing(before[0]!, before[1]!), childGrand = sharing(before[1]!, before[2]!);
  // The child rewrote page 1 and dropped page 2, the grandchild rewrote page 3.
  assert.equal(parentChild, `s.-${'s'.repeat(NPAGES - 3)}`);
  assert.equal(childGrand, `s.-.${'s'.repeat(NPAGES - 4)}`.replace(/^s\./, 'ss'));
  return { w, area, pids, parentChild, childGrand };
}

function assertShared(t: ReturnType<typeof startTree>): void {
  const after = t.pids.map((p) => frames(p, t.area));
  assert.equal(sharing(after[0]!, after[1]!), t.parentChild, 'parent and child');
  assert.equal(sharing(after[1]!, after[2]!), t.childGrand, 'child and grandchild');
}

test('pages shared copy-on-write by a parent, its child and grandchild are shared again after restore', async () => {
  const t = startTree('cowtree');
  const { images } = await checkpointRestore(t.w);
  // One executable and one entry per mapped file for the three (CRIU shares COW memory only between tasks whose mm names the same executable).
  const mms = t.pids.map((p) => readImage(images, 'mm', p)[0]!);
  assert.equal(new Set(mms.map((m) => m.exeFileId)).size, 1, 'the tasks name one executable');
  const fileMaps = (m: (typeof mms)[number]) => m.vmas.filter((v) => v.shmid && !(v.flags & 0x20)).map((v) => `${v.start.toString(16)} ${v.shmid}`).join(',');
  assert.equal(new Set(mms.map(fileMaps)).size, 1, 'their mapped files have the same ids');
  assert.equal(readImage(images, 'files', undefined).filter((f) => f.id === mms[0]!.exeFileId).length, 1);
  assertShared(t);
  t.w.go();
  assertPassed(t.w.finish());
});

const noCriu = criuWorks();
// CRIU's restore -d leaves the root to the subreaper above it: this process, to reap it as before.
if (!noCriu) setChildSubreaper();

test('CRIU 4.2 restores stasis\'s images of the tree with its pages shared copy-on-write again', { skip: noCriu }, async () => {
  const t = startTree('cowtree-criu');
  const images = tmpDir('cowtree-criu-img');
  await dump({ pid: t.w.pid, imagesDir: images });
  criu(['restore', '-d'], images, 'restore.log');
  assertShared(t);
  t.w.go();
  assertPassed(t.w.finish());
});
