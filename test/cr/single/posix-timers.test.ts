// POSIX timers come back at their ids, with their clocks, signals, sigev_values, intervals
// and the time they had left; and both ways of making a timer at a given id work on this
// kernel: PR_TIMER_CREATE_RESTORE_IDS where there is one, ids made in order otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { Injector, probeTimerRestoreIds } from '../../../src/sys/index.js';
import { freeze, thaw } from '../../../src/dump/freeze.js';
import { restorePosixTimers } from '../../../src/restore/posix-timers.js';
import type { PosixTimerEntry } from '../../../src/image/gen/stasis/timer_pb.js';

/** /proc/PID/timers without the pid the notification goes to (the same pid, or a tid). */
const timers = (pid: number) => fs.readFileSync(`/proc/${pid}/timers`, 'utf8').replace(/(pid|tid)\.\d+/g, '$1');
const posixOf = (images: string, pid: number): PosixTimerEntry[] => readImage(images, 'core', pid)[0]!.tc!.timers!.posix;

test('a periodic and a one-shot POSIX timer come back at their ids, the periodic one firing on, the one-shot one with its time left', async (t) => {
  const bin = compileWorkload('posix-timers', ['-lrt']);
  const w = new Workload('posix-timers', bin).start();
  const ids = fs.readFileSync(w.file('ids'), 'utf8').trim().split(' ').map(Number);
  assert.deepEqual(ids, [1, 4, 5]);
  const before = timers(w.pid);
  const exact = fs.readFileSync(`/proc/${w.pid}/timers`, 'utf8');
  const { images } = await checkpointRestore(w);
  const posix = posixOf(images, w.pid);
  assert.deepEqual(posix.map((p) => [p.itId, p.clockId, p.siSigno, p.itSigevNotify, p.sivalPtr]), [
    [1, 1, 10, 0, 0x5717a5e5n], // CLOCK_MONOTONIC, SIGUSR1, SIGEV_SIGNAL
    [4, 0, 0, 1, 0x1234n], // CLOCK_REALTIME, SIGEV_NONE
    [5, 7, 12, 4, 0n], // CLOCK_BOOTTIME, SIGUSR2, SIGEV_SIGNAL | SIGEV_THREAD_ID
  ]);
  assert.equal(posix[2]!.notifyThreadId, w.pid);
  assert.deepEqual(posix.map((p) => [p.isec, p.insec]), [[0n, 20_000_000n], [0n, 0n], [0n, 0n]]);
  assert.ok(posix[1]!.vsec > 990n && posix[1]!.vsec < 1000n, `the one-shot timer had ${posix[1]!.vsec} s left`);
  assert.equal(fs.readFileSync(`/proc/${w.pid}/timers`, 'utf8'), exact);
  w.go();
  const r = w.finish();
  assertPassed(r);
  t.diagnostic(`${r.result.split('\n')[1]}, made with ${probeTimerRestoreIds() ? 'PR_TIMER_CREATE_RESTORE_IDS' : 'ids in order'}`);

  // The same timers put by each method into a task that made none (its id counter at 0, as
  // a restored task's is): the same ids, clocks, signals and values.
  for (const explicit of [true, false]) {
    await t.test(`they are made at their ids ${explicit ? 'with PR_TIMER_CREATE_RESTORE_IDS' : 'in id order, deleting the ids in between'}`, (st) => {
      if (explicit && !probeTimerRestoreIds()) {
        st.skip('this kernel has no PR_TIMER_CREATE_RESTORE_IDS (Linux 6.14)');
        return;
      }
      const bare = new Workload('posix-timers', bin, ['bare']).start();
      const f = freeze(bare.pid);
      try {
        const inj = new Injector(bare.pid);
        try {
          // The thread notified is the one of this task.
          restorePosixTimers(inj, posix.map((p) => (p.notifyThreadId ? { ...p, notifyThreadId: bare.pid } : p)), explicit);
        } finally {
          inj.end();
        }
      } finally {
        thaw(f);
      }
      assert.equal(timers(bare.pid), before);
      bare.go();
      assertPassed(bare.finish());
    });
  }
});
