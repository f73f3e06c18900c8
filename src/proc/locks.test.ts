import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLockLine, parseLocks } from './locks.js';
import { ProcFormatError } from './proc-format-error.js';

// /proc/locks on Linux 6.18 while a test program held a lease, an OFD lock, two POSIX
// locks and a flock.
const LOCKS = `1: LEASE  ACTIVE    READ 3872 fe:00:2146473 0 EOF
2: OFDLCK ADVISORY  READ -1 fe:00:2146472 0 EOF
3: POSIX  ADVISORY  READ 3872 fe:00:2146471 100 EOF
4: POSIX  ADVISORY  WRITE 3872 fe:00:2146471 10 29
5: FLOCK  ADVISORY  WRITE 3872 fe:00:2146470 0 EOF
`;

test('parseLocks() reads a POSIX lock with its byte range', () => {
  assert.deepEqual(parseLocks(LOCKS)[3], {
    id: 4,
    blocked: false,
    kind: 'POSIX',
    mode: 'ADVISORY',
    type: 'WRITE',
    pid: 3872,
    dev: { major: 0xfe, minor: 0 },
    ino: 2146471n,
    start: 10n,
    end: 29n,
  });
});

test('parseLocks() reads EOF as an open end', () => {
  const [lease, ofd, posix, , flock] = parseLocks(LOCKS);
  assert.deepEqual([lease?.kind, lease?.mode, lease?.type, lease?.end], ['LEASE', 'ACTIVE', 'READ', null]);
  assert.deepEqual([posix?.start, posix?.end], [100n, null]);
  assert.deepEqual([flock?.kind, flock?.type, flock?.start, flock?.end], ['FLOCK', 'WRITE', 0n, null]);
  assert.deepEqual([ofd?.kind, ofd?.pid], ['OFDLCK', -1]);
});

test('parseLocks() marks waiters blocked on a lock', () => {
  const locks = parseLocks(`1: POSIX  ADVISORY  WRITE 100 08:01:1234 0 EOF
1: -> POSIX  ADVISORY  WRITE 101 08:01:1234 0 EOF
1:  -> FLOCK  ADVISORY  READ 102 08:01:1234 0 EOF
2: LEASE  BREAKING  UNLCK 103 08:01:99 0 EOF
`);
  assert.deepEqual(locks.map((l) => [l.id, l.blocked, l.pid]), [[1, false, 100], [1, true, 101], [1, true, 102], [2, false, 103]]);
  assert.deepEqual([locks[3]?.mode, locks[3]?.type], ['BREAKING', 'UNLCK']);
});

test('parseLockLine() reads a lock on no inode and a large offset', () => {
  const l = parseLockLine('7: POSIX  *NOINODE* READ 55 <none>:0 9223372036854775806 EOF');
  assert.deepEqual([l.mode, l.dev, l.ino, l.start], ['NOINODE', null, null, 9223372036854775806n]);
});

test('parseLockLine() reads a lock of unknown kind', () => {
  const l = parseLockLine('3: UNKNOWN UNKNOWN  WRITE 5 00:2e:77 0 EOF');
  assert.deepEqual([l.kind, l.mode, l.dev], ['UNKNOWN', 'UNKNOWN', { major: 0, minor: 0x2e }]);
});

test('parseLocks() of an empty file is an empty list', () => {
  assert.deepEqual(parseLocks(''), []);
});

test('parseLocks() refuses a lock kind it does not know', () => {
  assert.throws(() => parseLocks('1: FANCY  ADVISORY  WRITE 1 00:01:2 0 EOF\n'), (err: unknown) => err instanceof ProcFormatError && /kind "FANCY"/.test(err.message));
  assert.throws(() => parseLocks('1: POSIX  ADVISORY  WRITE 1 00:01:2 0\n'), /expected 7 fields/);
});
