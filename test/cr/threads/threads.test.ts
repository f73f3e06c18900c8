// Threads: every thread comes back with its tid, registers, TLS, name and the syscall it
// was sleeping in, and finishes its work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, REPO } from '../harness.js';
import { kill, getAffinity, setAffinity } from '../../../src/sys/index.js';
import { dumpSync, restoreSync } from '../../../src/api/index.js';

const tidsOf = (pid: number) => fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
const namesOf = (pid: number) => tidsOf(pid).map((t) => fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8'));

test('five threads sleeping in futex, nanosleep, clock_nanosleep, poll and read on a pipe finish with the right results', async () => {
  const w = new Workload('threads', compileWorkload('threads', ['-pthread'])).start();
  const tids = tidsOf(w.pid);
  const names = namesOf(w.pid);
  assert.equal(tids.length, 7);
  await checkpointRestore(w);
  assert.deepEqual(tidsOf(w.pid), tids);
  assert.deepEqual(namesOf(w.pid), names);
  w.go();
  assertPassed(w.finish());
});

function python(): string | null {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}
const py = python();

test('python3 with three threads, dumped mid-run, finishes with the right total', { skip: py ? false : 'python3 is not installed' }, async () => {
  const w = new Workload('pythreads', py!, [], [path.join(REPO, 'test/workloads/pythreads.py')]).start();
  assert.ok(tidsOf(w.pid).length >= 4);
  const tids = tidsOf(w.pid);
  await checkpointRestore(w);
  assert.deepEqual(tidsOf(w.pid), tids);
  w.go();
  assertPassed(w.finish(60000));
});

test('node with two worker_threads, dumped mid-run with its epoll, eventfds and pipes, finishes with the right total', async () => {
  const w = new Workload('nodeworkers', process.execPath, [], [path.join(REPO, 'test/workloads/nodeworkers.mjs')]).start();
  const tids = tidsOf(w.pid);
  assert.ok(tids.length >= 3, `${tids.length} threads`);
  await checkpointRestore(w);
  assert.deepEqual(tidsOf(w.pid), tids);
  w.go();
  const r = w.finish(60000);
  assertPassed(r);
  assert.match(fs.readFileSync(w.file('stdout.log'), 'utf8'), /^299916187742$/m);
});

// PTRACE_DETACH leaves each thread with TIF_SIGPENDING until it runs, and wants_signal() passes
// such a thread over. Here the leader, at SCHED_IDLE, shares CPU 0 with the thread that
// restores it and kills it (restoreSync(), pinned), and runs only once that thread lets the CPU
// go; its other thread has CPU 1 and runs at once. A restore that returned as soon as it had
// detached them had the SIGTERM taken by the other thread in 23 rounds of 40.
const cpus01 = (getAffinity(0)[0]! & 3n) === 3n;
test('a SIGTERM sent to the process as soon as the restore (or a dump --leave-running) returns is taken by its leader, as by the dumped process', { skip: cpus01 ? false : 'needs CPUs 0 and 1' }, () => {
  const bin = compileWorkload('sigleader', ['-pthread']);
  const mask = getAffinity(0);
  setAffinity(0, [1n]);
  try {
    for (let i = 0; i < 20; i++) {
      const w = new Workload('sigleader', bin, ['behind']).start();
      const images = tmpDir('sigleader-img');
      dumpSync({ pid: w.pid, imagesDir: images });
      const r = restoreSync({ imagesDir: images, detach: true });
      kill(r.pid, 15);
      assertPassed(w.finish());
      fs.rmSync(images, { recursive: true });
    }
    // The same once a dump --leave-running lets the tree go (thawTree() waits as the restore does).
    for (let i = 0; i < 20; i++) {
      const w = new Workload('sigleader', bin, ['behind']).start();
      const images = tmpDir('sigleader-img');
      dumpSync({ pid: w.pid, imagesDir: images, leaveRunning: true });
      kill(w.pid, 15);
      assertPassed(w.finish());
      fs.rmSync(images, { recursive: true });
    }
  } finally {
    setAffinity(0, mask);
  }
});
