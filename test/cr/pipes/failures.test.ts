// Pipes stasis cannot restore yet fail the dump with a reason, and the task runs on untouched.
import { test } from 'node:test';
import { Workload, compileWorkload, assertPassed, assertDumpRefused } from '../harness.js';

for (const [arg, why] of [['async', /has O_ASYNC set \(signal-driven I\/O\)/], ['owner', /has an owner for signals \(F_SETOWN \d+\)/]] as const) {
  test(`a pipe end with ${arg === 'async' ? 'O_ASYNC' : 'an F_SETOWN owner'} fails the dump naming pid, fd and why; the task keeps its pipe`, async () => {
    const w = new Workload(`pipe-${arg}`, compileWorkload('pipeasync'), [arg]).start();
    await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`^Cannot dump fd 5 of pid ${w.pid}: pipe:\\[\\d+\\] `), why]);
    w.go();
    assertPassed(w.finish());
  });
}
