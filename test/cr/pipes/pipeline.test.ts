// producer | filter | consumer, dumped mid-stream with both pipes full and two stages blocked
// in write(): after restore the stream finishes with every byte and the right checksum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, waitFor } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

const SYS_WRITE = 1;
const inSyscall = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]);

test('a three-process pipeline dumped mid-stream finishes with the exact output', async () => {
  const w = new Workload('pipeline', compileWorkload('pipeline')).start();
  const [producer, filter, consumer] = fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number) as [number, number, number];
  waitFor('the producer and the filter to block on full pipes', () =>
    inSyscall(producer) === SYS_WRITE && inSyscall(filter) === SYS_WRITE);
  const { images, d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [w.pid, producer, filter, consumer].sort());
  const inFlight = readImage(images, 'pipes-data', undefined).map((i) => i.entry.bytes);
  assert.equal(inFlight.length, 2);
  // Both pipes were full (their writers blocked): all 16 slots taken, though not every page
  // to its end (a write merges into the last page only the tail that fits whole).
  for (const n of inFlight) assert.ok(n > 32768, `only ${n} bytes were in flight in a full pipe`);
  w.go();
  const r = w.finish();
  if (fs.existsSync(w.file('consumer-why'))) assert.fail(`consumer: ${fs.readFileSync(w.file('consumer-why'), 'utf8')}`);
  assertPassed(r);
  assert.match(r.result, /^PASS\n6291456 [0-9a-f]{16}$/);
});
