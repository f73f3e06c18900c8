// Unix socket pairs split across a process tree: after restore each end is in the right
// process at the right fd, with its queue, and the two processes talk over them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('socket pairs split between a parent and its child, and one end shared by fork, come back connected to the right peers', async () => {
  const w = new Workload('unixtree', compileWorkload('unixtree')).start();
  const child = Number(fs.readFileSync(w.file('pids'), 'utf8').trim());
  const link = (pid: number, fd: number) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  const { images, d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [w.pid, child].sort());
  // Six sockets (three pairs), fd 20 one entry for both processes.
  const usks = readImage(images, 'files', undefined).filter((f) => f.usk).map((f) => f.usk!);
  assert.equal(usks.length, 6);
  for (const u of usks) assert.equal(usks.find((p) => p.ino === u.peer)?.peer, u.ino, `socket ${u.id}'s peer names it back`);
  assert.equal(link(child, 20), link(w.pid, 20));
  assert.notEqual(link(child, 6), link(w.pid, 5));
  w.go();
  assertPassed(w.finish());
});
