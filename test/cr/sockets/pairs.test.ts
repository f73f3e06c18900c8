// Unix socket pairs of one process (stream, datagram, seqpacket), with data in flight both
// ways, shut sides and a closed peer: restored byte for byte and message for message, with
// their fd numbers, flags and buffer sizes; and left exactly as they were by --leave-running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, verifyImages, leaveRunningThenRestore } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';

const fdsOf = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);

/** The queues of the workload's sockets, as sk-queues.img holds them: packet sizes by socket. */
function checkQueues(images: string): void {
  const files = readImage(images, 'files', undefined).filter((f) => f.usk);
  assert.equal(files.length, 14, 'one UNIXSK entry per socket (the dup at 30 shares its)');
  const sizes = new Map<number, number[]>();
  for (const { entry } of readImage(images, 'sk-queues', undefined)) sizes.set(entry.idFor, [...(sizes.get(entry.idFor) ?? []), entry.length]);
  const got = [...sizes.values()].map((s) => s.join(',')).sort();
  assert.deepEqual(got, ['1,0,300,4096,17', '10,2000,33', '200', '300', '5000', '50', '60000,5', '7', '70000', '50,51', '5,6'].sort());
}

test('socket pairs of every type come back with their queues, flags, buffer sizes and shut sides, and carry on', async () => {
  const w = new Workload('unixpairs', compileWorkload('unixpairs')).start();
  const before = fdsOf(w.pid);
  const { images } = await checkpointRestore(w);
  checkQueues(images);
  assert.deepEqual(fdsOf(w.pid), before);
  w.go();
  assertPassed(w.finish());
});

test('a dump with --leave-running leaves every socket queue as it was; the images restore the same sockets', async () => {
  const w = new Workload('unixpairs-live', compileWorkload('unixpairs')).start();
  await leaveRunningThenRestore(w, checkQueues);
});
