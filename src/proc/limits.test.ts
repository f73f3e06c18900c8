import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLimits } from './limits.js';
import { ProcFormatError } from './proc-format-error.js';

// Captured on Linux 6.18 (/proc/self/limits of a shell), two limits edited.
const LIMITS = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96363                96363                processes 
Max open files            1024                 20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96363                96363                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      18446744073709551614 unlimited            us        
`;

test('parseLimits() reads every resource in RLIMIT_* order, unlimited as RLIM_INFINITY', () => {
  const l = parseLimits(LIMITS);
  assert.equal(l.length, 16);
  assert.deepEqual(l[0], { cur: 0xffffffffffffffffn, max: 0xffffffffffffffffn });
  assert.deepEqual(l[3], { cur: 8388608n, max: 0xffffffffffffffffn });
  assert.deepEqual(l[7], { cur: 1024n, max: 20000n });
  assert.deepEqual(l[13], { cur: 0n, max: 0n }); // no unit
  assert.deepEqual(l[15], { cur: 18446744073709551614n, max: 0xffffffffffffffffn }); // a value as wide as its column
});

test('parseLimits() refuses a file of another layout (resources missing or out of order)', () => {
  const lines = LIMITS.split('\n');
  assert.throws(() => parseLimits(lines.slice(0, -2).join('\n')), ProcFormatError);
  assert.throws(() => parseLimits([lines[0], lines[2], lines[1], ...lines.slice(3)].join('\n')), ProcFormatError);
  assert.throws(() => parseLimits(LIMITS.replace('1024 ', '1k   ')), ProcFormatError);
});
