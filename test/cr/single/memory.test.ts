// One process, its memory and registers: the state a restore must bring back exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { Workload, compileWorkload, checkpointRestore, assertPassed, sleepMs, tmpDir } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';

function counts(file: string): number[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
}

/** sha256 of the workload's buffer (its address and size are in `sum`), read from outside. */
function bufferHash(w: Workload): string {
  const [, addr, len] = fs.readFileSync(w.file('sum'), 'utf8').trim().split(' ');
  const start = BigInt(`0x${addr}`), end = start + BigInt(`0x${len}`);
  const fd = fs.openSync(`/proc/${w.pid}/mem`, 'r');
  try {
    const h = crypto.createHash('sha256');
    const buf = Buffer.alloc(4 << 20);
    for (let a = start; a < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, Number(end - a)), Number(a));
      assert.ok(n > 0);
      h.update(buf.subarray(0, n));
      a += BigInt(n);
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

test('a counting process continues from the exact value after restore, its memory intact', async () => {
  const w = new Workload('counter', compileWorkload('counter')).start();
  sleepMs(100);
  const { d } = await checkpointRestore(w);
  const atDump = counts(w.file('counter.log'));
  assert.ok(d.pagesWritten > 0);
  sleepMs(100);
  w.go();
  const r = w.finish();
  assertPassed(r);
  const all = counts(w.file('counter.log'));
  assert.ok(all.length > atDump.length, 'it did not count after the restore');
  all.forEach((n, i) => assert.equal(n, i, `counter.log line ${i} holds ${n}`));
});

test('256 MiB of pseudo-random heap comes back byte for byte', async () => {
  const w = new Workload('bigheap', compileWorkload('bigheap'), ['256']).start();
  const before = bufferHash(w);
  const { d } = await checkpointRestore(w);
  assert.ok(d.pagesWritten >= 65536, `only ${d.pagesWritten} pages written`);
  assert.equal(bufferHash(w), before);
  w.go();
  assertPassed(w.finish());
});

test('general purpose, SSE and AVX registers survive', async () => {
  const w = new Workload('regs', compileWorkload('regs')).start();
  await checkpointRestore(w);
  w.go();
  assertPassed(w.finish());
});

test('untouched and zero pages are not written', async () => {
  const w = new Workload('bigheap', compileWorkload('bigheap'), ['8']).start();
  const { d } = await checkpointRestore(w);
  // 8 MiB of data is 2048 pages; the rest of the scanned space (libc, stack) is small.
  assert.ok(d.pagesWritten < d.pagesScanned, `${d.pagesWritten} of ${d.pagesScanned} pages written`);
  assert.ok(d.pagesWritten >= 2048 && d.pagesWritten < 2048 + 512, `${d.pagesWritten} pages written`);
  w.go();
  assertPassed(w.finish());
});

const mapsOf = (pid: number) => fs.readFileSync(`/proc/${pid}/maps`, 'utf8');

test('guard pages, read-only data, shared file mappings and advice keep their layout and contents', async () => {
  const w = new Workload('maps', compileWorkload('maps')).start();
  const before = mapsOf(w.pid);
  // All VmFlags but `ac` (VM_ACCOUNT, commit accounting): it follows how an area was first
  // mapped (writable or not), which restore cannot always repeat and no program can see.
  const smapsFlags = (pid: number) => fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')
    .filter((l) => l.startsWith('VmFlags')).map((l) => l.replace(' ac ', ' '));
  const flagsBefore = smapsFlags(w.pid);
  await checkpointRestore(w);
  // The whole layout, vDSO and vvar included, is where it was.
  assert.equal(mapsOf(w.pid), before);
  assert.deepEqual(smapsFlags(w.pid), flagsBefore);
  w.go();
  assertPassed(w.finish());
});

test('restore() without detach resolves while the tree runs, and wait() gives its exit status', async () => {
  const w = new Workload('bigheap', compileWorkload('bigheap'), ['1']).start();
  const images = tmpDir('wait-img');
  await dump({ pid: w.pid, imagesDir: images });
  w.go();
  const r = await restore({ imagesDir: images });
  assert.deepEqual(await r.wait(), { kind: 'exited', code: 0 });
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
});
