// SysV IPC: a tree with an IPC namespace of its own is restored in a new one holding its
// segments (contents, attached where they were), semaphore values and queued messages, each
// at its id; a tree using a segment of stasis's own namespace is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('SysV segments, semaphores and messages come back at their ids in a new IPC namespace', async () => {
  const w = new Workload('sysv', compileWorkload('sysv')).start();
  const [shm1, shm2, sem, mq] = fs.readFileSync(w.file('ids'), 'utf8').trim().split(' ').map(Number);
  const { images } = await checkpointRestore(w);
  const ns = readImage(images, 'ids', w.pid)[0]!.ipcNsId!;
  const shm = readImage(images, 'ipcns-shm', ns);
  assert.deepEqual(shm.map((s) => [s.entry.desc!.id, Number(s.entry.size)]).sort(), [[shm1, 3 * 4096 + 100], [shm2, 8192]].sort());
  assert.deepEqual(readImage(images, 'ipcns-sem', ns).map((s) => [s.entry.desc!.id, s.entry.nsems]), [[sem, 3]]);
  assert.deepEqual(readImage(images, 'ipcns-msg', ns).map((s) => [s.entry.desc!.id, s.entry.qnum]), [[mq, 3]]);
  const nsAfter = fs.readlinkSync(`/proc/${w.pid}/ns/ipc`);
  assert.notEqual(nsAfter, fs.readlinkSync('/proc/self/ns/ipc'), 'the restored tree is in stasis\'s IPC namespace');
  w.go();
  assertPassed(w.finish());
});

test('a tree with a SysV segment of the host\'s IPC namespace attached is refused', async () => {
  const w = new Workload('sysv', compileWorkload('sysv'), ['host']).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`pid ${w.pid} has SysV shared memory segment \\d+`), /IPC namespace/]);
  w.go();
  assertPassed(w.finish());
});
