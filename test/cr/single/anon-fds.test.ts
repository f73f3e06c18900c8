// eventfd, signalfd, timerfd and epoll: counters, modes, signal sets and epoll targets come back at
// their fd numbers, and the epoll still finds its targets by the task's own fd numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';

const links = (pid: number) =>
  fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b).map((fd) => `${fd} ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/:\[\d+\]$/, '')}`);

test('eventfds, a signalfd, timerfds and an epoll watching them come back with their counters, signals, timers and targets', async () => {
  const w = new Workload('anonfds', compileWorkload('anonfds')).start();
  const before = links(w.pid);
  assert.ok(before.includes('30 anon_inode:[eventpoll]'), before.join(', '));
  const { images } = await checkpointRestore(w);
  assert.deepEqual(links(w.pid), before);
  assert.ok(fs.readFileSync(`${images}/files.img`).length > 0);
  w.go();
  assertPassed(w.finish());
});
