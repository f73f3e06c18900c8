import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelDev, parseFdinfo } from './fdinfo.js';
import { ProcFormatError } from './proc-format-error.js';

// All captured on Linux 6.18 from one test program.

test('parseFdinfo() reads pos, octal flags, mnt_id and ino of a regular file', () => {
  const info = parseFdinfo('pos:\t7302\nflags:\t0100001\nmnt_id:\t27\nino:\t2146442\n');
  assert.deepEqual(info, { pos: 7302n, flags: 0o100001, mntId: 27, ino: 2146442n, locks: [], extra: new Map() });
});

test('parseFdinfo() reads an eventfd counter in hex', () => {
  const info = parseFdinfo(`pos:\t0
flags:\t02004002
mnt_id:\t17
ino:\t1039
eventfd-count:               2a
eventfd-id: 1
eventfd-semaphore: 0
`);
  assert.equal(info.flags, 0o2004002);
  assert.deepEqual(info.eventfd, { count: 42n, id: 1, semaphore: false });
  assert.equal(info.extra.size, 0);
});

test('parseFdinfo() reads every epoll target', () => {
  const info = parseFdinfo(`pos:\t0
flags:\t02
mnt_id:\t17
ino:\t1039
tfd:        6 events:       1c data:                7  pos:0 ino:1bf0 sdev:f
tfd:        3 events: 80000019 data:     deadbeefcafe  pos:0 ino:40f sdev:10
`);
  assert.deepEqual(info.epoll, [
    { tfd: 6, events: 0x1c, data: 7n, pos: 0n, ino: 0x1bf0n, sdev: 0xf },
    { tfd: 3, events: 0x80000019, data: 0xdeadbeefcafen, pos: 0n, ino: 0x40fn, sdev: 0x10 },
  ]);
});

test('parseFdinfo() reads a signalfd mask as a BigInt', () => {
  const info = parseFdinfo('pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1039\nsigmask:\t0000000800000201\n');
  // SIGHUP (1), SIGUSR1 (10) and SIGRTMIN+2 (36): bit sig - 1.
  assert.deepEqual(info.signalfd, { sigmask: (1n << 0n) | (1n << 9n) | (1n << 35n) });
});

test('parseFdinfo() reads inotify watches with their file handles', () => {
  const info = parseFdinfo(`pos:\t0
flags:\t00
mnt_id:\t17
ino:\t1039
inotify wd:2 ino:2e3 sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e302000000000000
inotify wd:1 ino:3f7e8 sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e8f7030000000000
inotify wd:a ino:5 sdev:2d mask:fff ignored_mask:0
`);
  assert.deepEqual(info.inotify, [
    { wd: 2, ino: 0x2e3n, sdev: 0xfe00000, mask: 2, ignoredMask: 0, fhandle: { type: 1, handle: Buffer.from('e302000000000000', 'hex') } },
    { wd: 1, ino: 0x3f7e8n, sdev: 0xfe00000, mask: 0x300, ignoredMask: 0, fhandle: { type: 1, handle: Buffer.from('e8f7030000000000', 'hex') } },
    { wd: 10, ino: 5n, sdev: 0x2d, mask: 0xfff, ignoredMask: 0 },
  ]);
  assert.deepEqual(kernelDev(0xfe00000), { major: 0xfe, minor: 0 });
});

test('parseFdinfo() reads fanotify flags and inode, mount and filesystem marks', () => {
  const info = parseFdinfo(`pos:\t0
flags:\t02
mnt_id:\t17
ino:\t1039
fanotify flags:0 event-flags:8000
fanotify mnt_id:1b mflags:0 mask:20 ignored_mask:0
fanotify ino:3f7e8 sdev:fe00000 mflags:0 mask:28 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e8f7030000000000
fanotify sdev:fe00000 mflags:0 mask:1 ignored_mask:0
`);
  assert.deepEqual(info.fanotify, {
    flags: 0,
    eventFlags: 0o100000,
    marks: [
      { target: 'mount', mntId: 27, mflags: 0, mask: 0x20, ignoredMask: 0 },
      { target: 'inode', ino: 0x3f7e8n, sdev: 0xfe00000, mflags: 0, mask: 0x28, ignoredMask: 0, fhandle: { type: 1, handle: Buffer.from('e8f7030000000000', 'hex') } },
      { target: 'filesystem', sdev: 0xfe00000, mflags: 0, mask: 1, ignoredMask: 0 },
    ],
  });
});

test('parseFdinfo() reads a relative and an absolute timerfd', () => {
  const rel = parseFdinfo(`pos:\t0
flags:\t04002
mnt_id:\t17
ino:\t1039
clockid: 1
ticks: 0
settime flags: 00
it_value: (99, 961564850)
it_interval: (1, 500)
`);
  assert.deepEqual(rel.timerfd, { clockid: 1, ticks: 0n, settimeFlags: 0, value: { sec: 99n, nsec: 961564850 }, interval: { sec: 1n, nsec: 500 } });
  const abs = parseFdinfo('pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1039\nclockid: 0\nticks: 3\nsettime flags: 03\nit_value: (999, 304744175)\nit_interval: (0, 0)\n');
  assert.deepEqual([abs.timerfd?.clockid, abs.timerfd?.ticks, abs.timerfd?.settimeFlags], [0, 3n, 3]);
});

test('parseFdinfo() reads the locks held through a file', () => {
  const info = parseFdinfo(`pos:\t0
flags:\t0100002
mnt_id:\t27
ino:\t2146471
lock:\t1: POSIX  ADVISORY  WRITE 3872 fe:00:2146471 10 29
lock:\t2: POSIX  ADVISORY  READ 3872 fe:00:2146471 100 EOF
`);
  assert.deepEqual(
    info.locks.map((l) => [l.kind, l.type, l.start, l.end]),
    [['POSIX', 'WRITE', 10n, 29n], ['POSIX', 'READ', 100n, null]],
  );
  const flock = parseFdinfo('pos:\t0\nflags:\t0100002\nmnt_id:\t27\nino:\t2146470\nlock:\t1: FLOCK  ADVISORY  WRITE 3872 fe:00:2146470 0 EOF\n');
  assert.deepEqual([flock.locks[0]?.kind, flock.locks[0]?.ino], ['FLOCK', 2146470n]);
});

test('parseFdinfo() keeps the lines of other kinds as extras', () => {
  const pidfd = parseFdinfo('pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t3874\nPid:\t3872\nNSpid:\t3872\n');
  assert.deepEqual([...pidfd.extra], [['Pid', '3872'], ['NSpid', '3872']]);
  const ptmx = parseFdinfo('pos:\t0\nflags:\t0100002\nmnt_id:\t24\nino:\t91\ntty-index:\t0\n');
  assert.equal(ptmx.extra.get('tty-index'), '0');
  const socket = parseFdinfo('pos:\t0\nflags:\t02\nmnt_id:\t10\nino:\t7153\nscm_fds: 0\n');
  assert.equal(socket.extra.get('scm_fds'), '0');
  assert.equal(socket.eventfd, undefined);
});

test('parseFdinfo() reads a file from before the ino line existed', () => {
  const info = parseFdinfo('pos:\t0\nflags:\t0100000\nmnt_id:\t24\n');
  assert.equal(info.ino, undefined);
});

test('parseFdinfo() refuses a file without flags', () => {
  assert.throws(() => parseFdinfo('pos:\t0\nmnt_id:\t24\n'), (err: unknown) => err instanceof ProcFormatError && /flags is missing/.test(err.message));
  assert.throws(() => parseFdinfo(''), ProcFormatError);
  assert.throws(() => parseFdinfo('pos:\t0\nflags:\t09\nmnt_id:\t24\n'), /not an octal number/);
});
