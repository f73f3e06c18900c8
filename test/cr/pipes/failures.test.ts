// Pipes stasis cannot restore yet fail the dump with a reason, and the task runs on untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, assertPassed, tmpDir } from '../harness.js';
import { dump, StasisError } from '../../../src/api/index.js';

for (const [arg, why] of [['async', /has O_ASYNC set \(signal-driven I\/O\)/], ['owner', /has an owner for signals \(F_SETOWN \d+\)/]] as const) {
  test(`a pipe end with ${arg === 'async' ? 'O_ASYNC' : 'an F_SETOWN owner'} fails the dump naming pid, fd and why; the task keeps its pipe`, async () => {
    const w = new Workload(`pipe-${arg}`, compileWorkload('pipeasync'), [arg]).start();
    const images = tmpDir(`pipe-${arg}-img`);
    await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
      assert.ok(e instanceof StasisError);
      assert.equal(e.code, 'E_UNSUPPORTED_FD');
      assert.match(e.message, new RegExp(`^Cannot dump fd 5 of pid ${w.pid}: pipe:\\[\\d+\\] `));
      assert.match(e.message, why);
      return true;
    });
    assert.deepEqual(fs.readdirSync(images), [], 'the failed dump left images behind');
    assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
    w.go();
    assertPassed(w.finish());
  });
}
