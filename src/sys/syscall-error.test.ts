import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errnoName, failedWith, SyscallError } from './syscall-error.js';

test('errnoName() names every errno as libuv does, and the kernel restart codes', () => {
  assert.equal(errnoName(2), 'ENOENT');
  assert.equal(errnoName(125), 'ECANCELED');
  assert.equal(errnoName(10), 'ECHILD'); // libuv does not name these
  assert.equal(errnoName(37), 'ENOLCK');
  assert.equal(errnoName(11), 'EAGAIN');
  assert.equal(errnoName(512), 'ERESTARTSYS');
  assert.equal(errnoName(9999), 'E9999');
  assert.equal(failedWith(-13n), 'EACCES');
});

test('SyscallError says which call failed with which errno name', () => {
  const e = new SyscallError('openat', 24, 'pid 812');
  assert.equal(e.message, 'openat (pid 812) failed with EMFILE');
  assert.equal(e.code, 'EMFILE');
});
