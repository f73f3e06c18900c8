import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePosixTimers } from './timers.js';
import { ProcFormatError } from './proc-format-error.js';

// /proc/PID/timers on Linux 6.18 of a program with a SIGEV_SIGNAL timer (sival 0x1234), a
// SIGEV_NONE one, a default one (NULL sigevent) and a SIGEV_THREAD_ID one; newest first.
const TIMERS = `ID: 4
signal: 34/00007ffd5e8a1c40
notify: signal/tid.23479
ClockID: -6
ID: 3
signal: 14/0000000000000003
notify: signal/pid.23478
ClockID: 7
ID: 2
signal: 0/0000000000001234
notify: none/pid.23478
ClockID: 0
ID: 0
signal: 10/0000000000001234
notify: signal/pid.23478
ClockID: 1
`;

test('parsePosixTimers() reads each timer with its signal, value, notification and clock', () => {
  const t = parsePosixTimers(TIMERS);
  assert.equal(t.length, 4);
  assert.deepEqual(t[3], { id: 0, signo: 10, sival: 0x1234n, notify: 0, target: 23478, clockId: 1 });
  assert.deepEqual(t[2], { id: 2, signo: 0, sival: 0x1234n, notify: 1, target: 23478, clockId: 0 });
});

test('parsePosixTimers() turns a tid target into SIGEV_THREAD_ID and keeps a negative CPU clock id', () => {
  assert.deepEqual(parsePosixTimers(TIMERS)[0], { id: 4, signo: 34, sival: 0x7ffd5e8a1c40n, notify: 4, target: 23479, clockId: -6 });
});

test('parsePosixTimers() reads a task without timers as none', () => {
  assert.deepEqual(parsePosixTimers(''), []);
});

test('parsePosixTimers() names the line it cannot read', () => {
  assert.throws(() => parsePosixTimers(TIMERS.replace('none/pid', 'bogus/pid')), (e: unknown) =>
    e instanceof ProcFormatError && e.line === 'notify: bogus/pid.23478');
  assert.throws(() => parsePosixTimers('ID: 1\nsignal: 1/0\n'), ProcFormatError);
});
