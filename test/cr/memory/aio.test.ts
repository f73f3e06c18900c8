// An AIO context (io_setup) is refused naming it: requests in flight in it cannot be seen
// from outside the kernel (CRIU 4.2 restores its ring and loses them), and the task keeps
// running with its events.
import { test } from 'node:test';
import { Workload, compileWorkload, assertPassed, assertDumpRefused } from '../harness.js';

test('an AIO ring (io_setup) is refused naming it, the task left running with its events', async () => {
  const w = new Workload('aio-ring', compileWorkload('aio-ring')).start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/Cannot dump the AIO ring \(io_setup\) at 0x[0-9a-f]+-0x[0-9a-f]+ \(\/\[aio\]\) of pid \d+: requests still in flight/]);
    w.go();
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});
