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

/** Runs `fn` with this thread in a new network namespace (a child spawned meanwhile is born in it), then back in its own; the new one goes with the last of what `fn` left in it. */
export function inNewNetns<T>(fn: () => T): T {
  const mine = fs.openSync('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC);
  try {
    syscall('unshare', CLONE_NEWNET);
    try {
      return fn();
    } finally {
      const r = syscallRaw('setns', mine, CLONE_NEWNET);
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

// ioctl_ns(2): _IO(0xb7, n).
const NS_GET_USERNS = 0xb701, NS_GET_PARENT = 0xb702, NS_GET_OWNER_UID = 0xb704;

/** The inode of the namespace an NS_GET_* ioctl on the namespace file at `path` leads to, or undefined (EPERM: outside stasis's reach). */
function relatedNs(path: string, req: number): number | undefined {
  const fd = fs.openSync(path, O_RDONLY | O_CLOEXEC);
  try {
    const r = syscallRaw('ioctl', fd, req, 0);
    if (r < 0n) {
      if (r === -1n) return undefined; // EPERM: an ancestor stasis is not in
      throw new SyscallError('ioctl', Number(-r), path);
    }
    try {
      return fs.fstatSync(Number(r)).ino;
    } finally {
      fs.closeSync(Number(r));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The inode of the user namespace that owns the namespace at `path` (`/proc/PID/ns/KIND`). */
export function nsOwnerInode(path: string): number | undefined {
  return relatedNs(path, NS_GET_USERNS);
}

/** The inode of the parent of the user (or pid) namespace at `path`. */
export function nsParentInode(path: string): number | undefined {
  return relatedNs(path, NS_GET_PARENT);
}

/** The uid (in stasis's view) that created the user namespace at `path`. */
export function userNsOwnerUid(path: string): number {
  const fd = fs.openSync(path, O_RDONLY | O_CLOEXEC);
  const uid = Buffer.alloc(4);
  try {
    syscall('ioctl', fd, NS_GET_OWNER_UID, addressOf(uid));
  } finally {
    keepAlive(uid);
    fs.closeSync(fd);
  }
  return uid.readUInt32LE(0);
}
