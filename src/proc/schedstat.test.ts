import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedstat } from './schedstat.js';
import { ProcFormatError } from './proc-format-error.js';

// Captured on Linux 6.18 (/proc/self/schedstat of a shell).
test('parseSchedstat() reads the run time, the wait time and the timeslices', () => {
  assert.deepEqual(parseSchedstat('95262 2129683 2\n'), { runNs: 95262n, waitNs: 2129683n, timeslices: 2 });
});

test('parseSchedstat() refuses a line that is not three decimals', () => {
  assert.throws(() => parseSchedstat('95262 2129683\n'), ProcFormatError);
  assert.throws(() => parseSchedstat('95262 2129683 x\n'), /timeslices is "x", not a decimal number/);
});
