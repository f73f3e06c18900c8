// pidfds: of live tasks of the tree (a child, the task itself, a zombie), with their flags,
// close-on-exec and sharing (PIDFD_THREAD pidfds of the leader and of another thread too), and of processes reaped before the dump (one stand-in per dead
// process, dying as it did); a pidfd of a process outside the tree is refused.
import fs from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

const O_NONBLOCK = 0o4000, PIDFD_THREAD = 0o200;

test('pidfds come back on the same processes with their flags, and those of reaped processes stale with their exit status', async () => {
  const w = new Workload('pidfds', compileWorkload('pidfds', ['-pthread'])).start();
  const { images, d } = await checkpointRestore(w);
  const pidfds = readImage(images, 'files', undefined).filter((f) => f.pidfd).map((f) => f.pidfd!);
  const [root, a] = [d.pids[0]!, d.pids[1]!];
  const tid = Number(fs.readdirSync(`/proc/${root}/task`).find((t) => Number(t) !== root));
  assert.ok(pidfds.some((p) => p.nspid === tid && p.flags === PIDFD_THREAD), `no PIDFD_THREAD pidfd of thread ${tid}`);
  // 40 and 42, 50 and 51 share one file each: nine objects for eleven fds.
  assert.equal(pidfds.length, 9);
  assert.ok(pidfds.some((p) => p.nspid === root && p.flags === PIDFD_THREAD), 'no PIDFD_THREAD pidfd of the task itself');
  assert.deepEqual(pidfds.map((p) => p.nspid).filter((p) => p === a).length, 2);
  assert.ok(pidfds.some((p) => p.nspid === root), 'no pidfd of the task itself');
  assert.ok(pidfds.some((p) => p.nspid === a && p.flags === O_NONBLOCK), 'no non-blocking pidfd of the child');
  const dead = pidfds.filter((p) => p.nspid === -1);
  assert.equal(dead.length, 3);
  // Two of one process, one of another: two inodes, each with how its process died (where the kernel keeps it).
  assert.equal(new Set(dead.map((p) => p.ino)).size, 2);
  if (dead.some((p) => p.attr)) assert.deepEqual(dead.map((p) => p.attr?.exitCode).sort(), [15, 7 << 8, 7 << 8].sort());
  w.go();
  assertPassed(w.finish());
});

test('a pidfd of a thread held by another process than the thread\'s is refused, and the tree keeps running', async () => {
  const w = new Workload('pidfds-forkthread', compileWorkload('pidfds', ['-pthread']), ['forkthread']).start();
  const child = Number(fs.readFileSync(`/proc/${w.pid}/task/${w.pid}/children`, 'utf8').trim().split(' ').pop());
  await assertDumpRefused(w, 'E_UNSUPPORTED', [/fd 50 of pid \d+ is a pidfd of thread \d+ of pid \d+ \(PIDFD_THREAD\): stasis restores such a pidfd only in the thread's own process/], [w.pid, child]);
  w.go();
  assertPassed(w.finish());
});

test('a pidfd of a process outside the tree is refused, and the tree keeps running', async () => {
  const w = new Workload('pidfds-outside', compileWorkload('pidfds', ['-pthread']), ['outside']).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [/fd 48 of pid \d+ \(a pidfd\)/, new RegExp(`refers to pid ${process.pid}, which is not in the tree`)]);
  w.go();
  assertPassed(w.finish());
});
