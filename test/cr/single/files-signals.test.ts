// Fds and signal state of one process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed, sleepMs } from '../harness.js';
import { kill } from '../../../src/sys/index.js';
import fs from 'node:fs';

test('files keep their numbers, offsets, flags, O_APPEND and close-on-exec', async () => {
  const w = new Workload('files', compileWorkload('files')).start();
  const before = fs.readdirSync(`/proc/${w.pid}/fd`).map(Number).sort((a, b) => a - b);
  await checkpointRestore(w);
  assert.deepEqual(fs.readdirSync(`/proc/${w.pid}/fd`).map(Number).sort((a, b) => a - b), before);
  w.go();
  assertPassed(w.finish());
});

test('a handler and a blocked pending signal survive; a signal after restore runs the handler', async () => {
  const w = new Workload('signals', compileWorkload('signals')).start();
  await checkpointRestore(w);
  const status = fs.readFileSync(`/proc/${w.pid}/status`, 'utf8');
  const usr2 = 1n << 11n;
  assert.ok(BigInt(`0x${/SigBlk:\s+(\w+)/.exec(status)?.[1]}`) & usr2, 'SIGUSR2 is not blocked');
  assert.ok(BigInt(`0x${/ShdPnd:\s+(\w+)/.exec(status)?.[1]}`) & usr2 || BigInt(`0x${/SigPnd:\s+(\w+)/.exec(status)?.[1]}`) & usr2,
    'SIGUSR2 is not pending');
  w.go();
  sleepMs(50);
  kill(w.pid, 10);
  assertPassed(w.finish());
});
