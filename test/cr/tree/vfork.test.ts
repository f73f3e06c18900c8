// A pending vfork(): the parent sleeps in the kernel until its child execs or exits, so it
// cannot be frozen, and the two share one address space. Refused, both left running.
import { test } from 'node:test';
import fs from 'node:fs';
import { Workload, compileWorkload, assertDumpRefused, assertPassed } from '../harness.js';

test('a parent inside vfork() is refused at dump with its child named, and both run on', async () => {
  const w = new Workload('vfork', compileWorkload('vfork')).start();
  const child = Number(fs.readFileSync(`/proc/${w.pid}/task/${w.pid}/children`, 'utf8').trim());
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`pid ${w.pid}`), new RegExp(`child ${child}`), /vfork/], [w.pid, child]);
  w.go();
  assertPassed(w.finish());
});
