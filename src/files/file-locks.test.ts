import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parseFdinfo } from '../proc/index.js';
import { LockCollector, FL_FLOCK, FL_LEASE, FL_OFD, FL_POSIX, F_RDLCK, F_UNLCK, F_WRLCK, LEASE_BREAKING } from './file-locks.js';
import type { FdProbe } from './kind.js';

const probe = (pid: number, fd: number, locks: string[]): FdProbe => ({
  pid, fd, link: '/tmp/x', stat: {} as fs.BigIntStats,
  info: parseFdinfo(`pos:\t0\nflags:\t02\nmnt_id:\t25\nino:\t77\n${locks.map((l) => `lock:\t${l}\n`).join('')}`),
});

test('LockCollector keeps each lock once, POSIX locks per process and flock per open file, with CRIU\'s flags and lengths', () => {
  const c = new LockCollector();
  const flock = '1: FLOCK  ADVISORY  WRITE 812 fe:01:77 0 EOF';
  c.add(probe(812, 3, [flock, '2: POSIX  ADVISORY  WRITE 812 fe:01:77 10 29', '3: OFDLCK ADVISORY  READ  -1 fe:01:77 0 99']), 5);
  // A dup of fd 3 in the same task and the same open file inherited by a child.
  c.add(probe(812, 4, [flock, '2: POSIX  ADVISORY  WRITE 812 fe:01:77 10 29']), 5);
  c.add(probe(813, 3, [flock, '4: POSIX  ADVISORY  READ  813 fe:01:77 100 EOF']), 5);
  assert.deepEqual(c.entries.map((e) => [e.flag, e.type, e.pid, e.fd, e.start, e.len]), [
    [FL_FLOCK, F_WRLCK, 812, 3, 0n, 0n],
    [FL_POSIX, F_WRLCK, 812, 3, 10n, 20n],
    [FL_OFD, F_RDLCK, 812, 3, 0n, 100n],
    [FL_POSIX, F_RDLCK, 813, 3, 100n, 0n],
  ]);
});

test('LockCollector names a flock by the task that took it, when that task holds it too', () => {
  const c = new LockCollector();
  const flock = '1: FLOCK  ADVISORY  READ 813 fe:01:77 0 EOF';
  c.add(probe(812, 3, [flock]), 5);
  c.add(probe(813, 7, [flock]), 5);
  c.add(probe(814, 3, [flock]), 5);
  assert.deepEqual(c.entries.map((e) => [e.flag, e.type, e.pid, e.fd]), [[FL_FLOCK, F_RDLCK, 813, 7]]);
});

test('LockCollector keeps leases, a breaking one with the type it is broken to, and refuses a lease breaker', () => {
  const c = new LockCollector();
  c.add(probe(812, 3, ['1: LEASE  ACTIVE    READ  812 fe:01:77 0 EOF']), 5);
  c.add(probe(812, 4, ['2: LEASE  BREAKING  READ  812 fe:01:78 0 EOF']), 6, () => F_UNLCK);
  assert.deepEqual(c.entries.map((e) => [e.flag, e.type, e.fd]), [[FL_LEASE, F_RDLCK, 3], [FL_LEASE, F_UNLCK | LEASE_BREAKING, 4]]);
  assert.throws(() => c.add(probe(812, 5, ['3: LEASE  BREAKER   READ  812 fe:01:79 0 EOF']), 7),
    /fd 5 of pid 812: it holds a LEASE lock \(BREAKER READ\), which stasis cannot restore/);
});
