// A datagram socket bound to a path, with datagrams queued from several senders, and the
// sockets of a parent and a child connected to it one way: after restore the receiver is
// bound to the path again with its queue in order, and both senders still reach it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('a bound datagram socket and the sockets connected to it one way come back with the queue and the connections', async () => {
  const w = new Workload('unixdgram', compileWorkload('unixdgram')).start();
  const child = Number(fs.readFileSync(w.file('pids'), 'utf8').trim());
  const { images, d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [w.pid, child].sort());
  const usks = readImage(images, 'files', undefined).filter((f) => f.usk).map((f) => f.usk!);
  const recv = usks.find((u) => u.name.length)!;
  assert.equal(Buffer.from(recv.name).toString(), w.file('log.sock'));
  assert.deepEqual(usks.filter((u) => u.peer === recv.ino).length, 2, 'two senders connected to it');
  const queued = readImage(images, 'sk-queues', undefined).filter((q) => q.entry.idFor === recv.id).map((q) => q.entry.length);
  assert.deepEqual(queued, [100, 222, 33, 0, 2222]);
  w.go();
  assertPassed(w.finish());
});
