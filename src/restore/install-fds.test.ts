import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  spawnTask, seize, interrupt, waitPid, kill, kcmpFile, pipe2, closeFd, getRlimit, Injector, PTRACE_O,
} from '../sys/index.js';
import { installFds, type FdInstall } from './install-fds.js';

const O_CLOEXEC = 0o2000000, RLIMIT_NOFILE = 7;

function withStoppedTask(fn: (pid: number) => void): void {
  const pid = spawnTask(['sleep', '100']);
  try {
    seize(pid, PTRACE_O.EXITKILL);
    interrupt(pid);
    waitPid(pid);
    fn(pid);
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
}

/** Every wanted fd holds its tool fd's open file with its close-on-exec, and nothing else is open. */
function check(pid: number, fds: FdInstall[]): void {
  const open = fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  assert.deepEqual(open, fds.map((f) => f.fd).sort((a, b) => a - b));
  for (const f of fds) {
    assert.equal(kcmpFile(pid, process.pid, f.fd, f.toolFd), 0, `fd ${f.fd} does not hold tool fd ${f.toolFd}`);
    const flags = parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${f.fd}`, 'utf8'))![1]!, 8);
    assert.equal((flags & O_CLOEXEC) !== 0, f.cloexec, `fd ${f.fd} close-on-exec`);
  }
}

test('installFds() puts every fd at its number whatever the order: reversed, on 0/1/2, on the numbers pidfd_getfd returns, dup\'d, at the limit', () => {
  const ends: number[] = [];
  for (let i = 0; i < 8; i++) ends.push(...pipe2(O_CLOEXEC));
  try {
    withStoppedTask((pid) => {
      const inj = new Injector(pid);
      try {
        const limit = Number(getRlimit(pid, RLIMIT_NOFILE).cur);
        const e = (i: number) => ends[i]!;
        const layouts: FdInstall[][] = [
          // Reversed: each pidfd_getfd result lands on a number a later fd must take.
          [5, 4, 3, 2, 1, 0].map((fd, i) => ({ fd, toolFd: e(i), cloexec: i % 2 === 0 })),
          // Exactly where pidfd_getfd puts them, and swapped.
          [{ fd: 0, toolFd: e(0), cloexec: false }, { fd: 1, toolFd: e(1), cloexec: false }],
          [{ fd: 1, toolFd: e(0), cloexec: false }, { fd: 0, toolFd: e(1), cloexec: true }],
          // One open file at several numbers; the trampoline below them all.
          [{ fd: 7, toolFd: e(2), cloexec: false }, { fd: 3, toolFd: e(2), cloexec: true }, { fd: 1, toolFd: e(3), cloexec: false }],
          // At the limit, and 0 wanted so the pidfd must move.
          [{ fd: limit - 1, toolFd: e(4), cloexec: false }, { fd: limit - 2, toolFd: e(5), cloexec: false }, { fd: 0, toolFd: e(6), cloexec: false }],
        ];
        // A dense block in a scrambled order.
        let x = 12345;
        const dense = Array.from({ length: 40 }, (_, fd) => fd);
        for (let i = dense.length - 1; i > 0; i--) {
          x = (x * 1103515245 + 12345) & 0x7fffffff;
          const j = x % (i + 1);
          [dense[i], dense[j]] = [dense[j]!, dense[i]!];
        }
        layouts.push(dense.map((fd, i) => ({ fd, toolFd: e(i % ends.length), cloexec: i % 3 === 0 })));
        for (const l of layouts) {
          installFds(inj, l);
          check(pid, l);
        }
      } finally {
        inj.end();
      }
    });
  } finally {
    for (const fd of ends) closeFd(fd);
  }
});
