import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRootTask } from './create-task.js';
import { kill, waitPid } from '../sys/index.js';

function freePid(): number {
  for (let p = 20000 + Math.floor(Math.random() * 10000); ; p++) if (!fs.existsSync(`/proc/${p}`)) return p;
}

test('createRootTask() makes a child of stasis with exactly the pid asked for', () => {
  const pid = freePid();
  const t = createRootTask(pid);
  try {
    assert.equal(t.pid, pid);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^PPid:\\s+${process.pid}$`, 'm'));
    assert.match(status, new RegExp(`^TracerPid:\\s+${process.pid}$`, 'm'));
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
});

test('createRootTask() refuses a pid that is taken', () => {
  assert.throws(() => createRootTask(process.pid), { code: 'E_PID_TAKEN' });
});
