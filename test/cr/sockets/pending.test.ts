// Unix connections a listener has not accepted yet (test/workloads/unixpending.c): after
// restore, accept() returns each in the order it was made, bound to the listener's name, with
// the bytes its client sends, its shut side and its message boundaries kept; a socket bound
// but never connected keeps its name and file. A dump that leaves the tree running leaves the
// listener's queue as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, leaveRunningThenRestore, assertPassed } from '../harness.js';
import { create } from '@bufbuild/protobuf';
import { readImage } from '../../../src/image/index.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../../../src/image/gen/stasis/fdinfo_pb.js';
import { UnixSkEntrySchema } from '../../../src/image/gen/stasis/sk-unix_pb.js';
import { refuseUnorderedPending } from '../../../src/files/index.js';
import { StasisError } from '../../../src/errors.js';

const TCP_LISTEN = 10;

test('connections not accepted yet come back queued on their listener, in order, and a bound socket keeps its name', async () => {
  const w = new Workload('unixpending', compileWorkload('unixpending')).start();
  const { images } = await checkpointRestore(w);
  const usks = readImage(images, 'files', undefined).flatMap((f) => (f.usk ? [f.usk] : []));
  const listeners = new Map(usks.filter((u) => u.state === TCP_LISTEN).map((u) => [u.ino, u]));
  // CRIU's convention: a client end not accepted yet names its listener as its peer.
  const pending = usks.filter((u) => listeners.has(u.peer));
  assert.equal(pending.length, 4, 'three stream clients and one seqpacket client name their listener');
  w.go();
  assertPassed(w.finish());
});

test('CRIU images with more than one connection not accepted yet on a listener are refused: they do not keep their order', () => {
  const files = new Map<number, FileEntry>();
  const usk = (id: number, ino: number, state: number, peer: number) =>
    create(FileEntrySchema, { id, type: FdTypes.UNIXSK, usk: create(UnixSkEntrySchema, { id, ino, type: 1, state, peer, name: Buffer.alloc(0) }) });
  files.set(1, usk(1, 100, TCP_LISTEN, 0));
  files.set(2, usk(2, 101, 1, 100));
  refuseUnorderedPending(files); // one: nothing to order
  files.set(3, usk(3, 102, 1, 100));
  assert.throws(() => refuseUnorderedPending(files), (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && /socket:\[100\] has connections not accepted yet, whose order CRIU's images do not keep/.test(e.message));
});

test('a dump that leaves the tree running leaves the connections not accepted yet on the listener', async () => {
  const w = new Workload('unixpending-lr', compileWorkload('unixpending')).start();
  await leaveRunningThenRestore(w);
});
