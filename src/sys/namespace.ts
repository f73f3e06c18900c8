// Entering another task's namespace for a moment, on this thread: setns(2) moves only the
// calling thread for the net, ipc, uts and cgroup kinds (unlike user and mnt, which need a
// single-threaded caller), so Node's main thread can read a namespace's sysctls, set its
// hostname or run `ip` in it (a child spawned meanwhile is born there), then come back.
import fs from 'node:fs';
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const CLONE_NEWNS = 0x00020000, CLONE_NEWCGROUP = 0x02000000, CLONE_NEWUTS = 0x04000000, CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000, CLONE_NEWPID = 0x20000000, CLONE_NEWNET = 0x40000000, CLONE_NEWTIME = 0x00000080;

const O_RDONLY = 0, O_CLOEXEC = 0o2000000;

/** Runs `fn` with this thread in the namespace at `path` (`/proc/PID/ns/KIND`), then back in its own. */
export function inNamespace<T>(path: string, kind: 'net' | 'ipc' | 'uts' | 'cgroup', flag: number, fn: () => T): T {
  const mine = fs.openSync(`/proc/thread-self/ns/${kind}`, O_RDONLY | O_CLOEXEC);
  try {
    const target = fs.openSync(path, O_RDONLY | O_CLOEXEC);
    try {
      syscall('setns', target, flag);
    } finally {
      fs.closeSync(target);
    }
    try {
      return fn();
    } finally {
      // Failing to come back would leave stasis itself in the tree's namespace: nothing may go on.
      const r = syscallRaw('setns', mine, flag);
      if (r < 0n) throw new SyscallError('setns', Number(-r));
    }
  } finally {
    fs.closeSync(mine);
  }
}

/** sethostname(2) and setdomainname(2) for this thread's UTS namespace. */
export function setUtsNames(nodename: string, domainname: string): void {
  const n = Buffer.from(nodename), d = Buffer.from(domainname);
  syscall('sethostname', addressOf(n), n.length);
  syscall('setdomainname', addressOf(d), d.length);
  keepAlive(n, d);
}

export const CLOCK_MONOTONIC = 1, CLOCK_BOOTTIME = 7;

/** clock_gettime(2) of this thread's time namespace, in nanoseconds. */
export function clockNs(clock: number): bigint {
  const ts = Buffer.alloc(16);
  syscall('clock_gettime', clock, addressOf(ts));
  keepAlive(ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}
