// Files in flight in Unix sockets' queues (test/workloads/scmrights.c): each passed file is a
// file object of files.img of its own (the same one as a task's fd where it is that open
// file), named by its packet in sk-queues.img (CRIU's scm_entry), and passed again at restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('files passed with SCM_RIGHTS and still in the queue come back in it: a pipe end only the queue holds, a file at its offset, a task\'s own fd', async () => {
  const w = new Workload('scmrights', compileWorkload('scmrights')).start();
  const { images } = await checkpointRestore(w);
  const scm = readImage(images, 'sk-queues', undefined).filter((q) => q.entry.scm.length).map((q) => q.entry.scm);
  assert.equal(scm.length, 3, 'three packets pass a file');
  const files = readImage(images, 'files', undefined);
  const passed = scm.flat().flatMap((c) => c.rights);
  for (const id of passed) assert.ok(files.some((f) => f.id === id), `file ${id} is in files.img`);
  assert.ok(files.some((f) => f.reg && f.reg.name.endsWith('/data.txt') && f.reg.pos === 3n), 'the passed file, at offset 3');
  w.go();
  assertPassed(w.finish());
});

test('an epoll instance in flight comes back in the queue watching the task\'s fd it watched, under its number', async () => {
  const w = new Workload('scmrights-epoll', compileWorkload('scmrights'), ['epoll']).start();
  const { images } = await checkpointRestore(w);
  const passed = readImage(images, 'sk-queues', undefined).flatMap((q) => q.entry.scm.flatMap((c) => c.rights));
  const ep = readImage(images, 'files', undefined).find((f) => f.epfd && passed.includes(f.id));
  assert.deepEqual(ep?.epfd?.tfd.map((t) => [t.tfd, t.data]), [[7, 0x1234567n]], 'the epoll in flight, its target fd 7');
  w.go();
  assertPassed(w.finish());
});

test('a datagram pair whose queues pass its own ends comes back with them in flight, each message from the other end\'s address (zdtm scm06)', async () => {
  const w = new Workload('scmloop', compileWorkload('scmloop')).start();
  const { images } = await checkpointRestore(w);
  const socks = new Map(readImage(images, 'files', undefined).filter((f) => f.usk).map((f) => [f.id, f.usk!] as const));
  const queued = readImage(images, 'sk-queues', undefined).map((q) => q.entry);
  assert.equal(queued.length, 4, 'two messages on each end');
  for (const q of queued) assert.ok(q.scm.flatMap((c) => c.rights).every((id) => socks.has(id)), 'each passes an end of the pair');
  w.go();
  assertPassed(w.finish());
});
