// Unix sockets with abstract names (test/workloads/unixabstract.c): a bound datagram socket
// with its queue and a sender connected to it, a listener and a connection it accepted; after
// restore they are bound to the same names, the queues read in order and new clients connect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('Unix sockets bound to abstract names come back bound to them, with their queues and the connection accepted', async () => {
  const w = new Workload('unixabstract', compileWorkload('unixabstract')).start();
  const pid = w.pid;
  const { images } = await checkpointRestore(w);
  const names = readImage(images, 'files', undefined).filter((f) => f.usk?.name.length).map((f) => Buffer.from(f.usk!.name).toString('latin1'));
  assert.ok(names.includes(`\0stasis-dg-${pid}`), 'the datagram socket\'s name');
  assert.ok(names.includes(`\0stasis-ln-${pid}`), 'the listener\'s name');
  w.go();
  assertPassed(w.finish());
});
