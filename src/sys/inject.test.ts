import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnTask } from './spawn.js';
import { seize, interrupt, waitPid, detach, PTRACE_O } from './ptrace.js';
import { Injector } from './inject.js';
import { getRegs } from './regs.js';
import { kill } from './process.js';

test('an injected getpid() returns the pid of the task and leaves its registers as they were', () => {
  const pid = spawnTask(['sleep', '100']);
  try {
    seize(pid, PTRACE_O.EXITKILL);
    interrupt(pid);
    const w = waitPid(pid);
    assert.equal(w?.kind, 'stopped');
    const before = getRegs(pid);
    const inj = new Injector(pid);
    assert.equal(inj.must('getpid'), BigInt(pid));
    const addr = inj.putString('/nonexistent');
    assert.equal(inj.call('chdir', addr), -2n);
    inj.end();
    assert.deepEqual(getRegs(pid), before);
    detach(pid);
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
});
