// Socket state beyond addresses (test/workloads/sockopts.c): UDP sockets shut one way, the
// options of SOL_SOCKET every socket has (SO_BINDTODEVICE, SO_PRIORITY, SO_MARK, SO_RCVLOWAT,
// SO_OOBINLINE, SO_DONTROUTE) on a TCP socket never bound and on a bound UDP socket, and the
// peer credentials of a Unix socket pair made by a child, since gone, under other ids; Unix
// stream and seqpacket sockets never connected (they have no queue to read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('UDP shut sides, SOL_SOCKET options and the peer credentials of a pair made by a gone child come back', async () => {
  const w = new Workload('sockopts', compileWorkload('sockopts')).start();
  const maker = Number(fs.readFileSync(w.file('maker'), 'utf8').trim());
  const { images } = await checkpointRestore(w);
  const files = readImage(images, 'files', undefined);
  const isks = files.filter((f) => f.isk).map((f) => f.isk!);
  assert.deepEqual(isks.filter((k) => k.proto === 17 && k.dstPort).map((k) => k.shutdown).sort(), [1, 2], 'one UDP socket shut for reading, one for writing');
  const tcp = isks.find((k) => k.proto === 6)!;
  assert.equal(tcp.opts?.soBoundDev, 'lo');
  assert.equal(tcp.opts?.soPriority, 5);
  assert.equal(tcp.opts?.soMark, 77);
  const bound = isks.find((k) => k.proto === 17 && !k.dstPort)!;
  assert.equal(bound.opts?.soMark, 78);
  const usks = files.filter((f) => f.usk).map((f) => f.usk!);
  const pair = usks.filter((u) => u.peerCred);
  assert.deepEqual(pair.map((u) => [u.peerCred!.pid, u.peerCred!.uid, u.peerCred!.gid]), [[maker, 4321, 1234], [maker, 4321, 1234]]);
  assert.deepEqual(usks.filter((u) => !u.peerCred).map((u) => [u.type, u.state]), [[1, 7], [5, 7]], 'a stream and a seqpacket socket never connected');
  w.go();
  assertPassed(w.finish());
});
