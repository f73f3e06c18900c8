// Process-level syscalls the tool makes on its own behalf.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const KCMP_FILE = 0;

export function pidfdOpen(pid: number): number {
  return Number(syscall('pidfd_open', pid, 0));
}
/** Duplicates fd `targetFd` of the task behind `pidfd` into this process (with O_CLOEXEC). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return Number(syscall('pidfd_getfd', pidfd, targetFd, 0));
}
/** kcmp(KCMP_FILE): 0 same file object, 1 / 2 ordering, 3 not equal (no ordering). */
export function kcmpFile(pid1: number, pid2: number, fd1: number, fd2: number): number {
  return Number(syscall('kcmp', pid1, pid2, KCMP_FILE, fd1, fd2));
}
export function kill(pid: number, sig: number): void {
  syscall('kill', pid, sig);
}
export function tgkill(tgid: number, tid: number, sig: number): void {
  syscall('tgkill', tgid, tid, sig);
}
/** Whether a pid names a live (or zombie) task. */
export function pidExists(pid: number): boolean {
  const r = syscallRaw('kill', pid, 0);
  return r === 0n || r === -1n; // EPERM still means it exists
}

export interface Rlimit {
  cur: bigint;
  max: bigint;
}
export function getRlimit(pid: number, resource: number): Rlimit {
  const old = Buffer.alloc(16);
  syscall('prlimit64', pid, resource, 0, addressOf(old));
  return { cur: old.readBigUInt64LE(0), max: old.readBigUInt64LE(8) };
}
export function setRlimit(pid: number, resource: number, lim: Rlimit): void {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(lim.cur, 0);
  b.writeBigUInt64LE(lim.max, 8);
  syscall('prlimit64', pid, resource, addressOf(b), 0);
  keepAlive(b);
}

export function closeFd(fd: number): void {
  syscallRaw('close', fd);
}
export function dupFd(fd: number): number {
  return Number(syscall('dup', fd));
}
export function lseek(fd: number, off: bigint, whence: number): bigint {
  return syscall('lseek', fd, off, whence);
}
export function fcntl(fd: number, cmd: number, arg: number | bigint = 0): number {
  return Number(syscall('fcntl', fd, cmd, arg));
}
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  const p = Buffer.from(path + '\0');
  const r = syscallRaw('openat', dirfd, addressOf(p), flags, mode);
  keepAlive(p);
  if (r < 0n) throw new SyscallError('openat', Number(-r), path);
  return Number(r);
}
export function ioctl(fd: number, req: bigint | number, arg: bigint | number): bigint {
  return syscall('ioctl', fd, req, arg);
}
export function mmapSelf(len: number, prot: number, flags: number): bigint {
  return syscall('mmap', 0, len, prot, flags, -1, 0);
}
export function munmapSelf(addr: bigint, len: number): void {
  syscall('munmap', addr, len);
}

/** An eventfd holding `counter` (written after creation: eventfd2's initial value is 32-bit). */
export function eventfd(counter: bigint, flags: number): number {
  const fd = Number(syscall('eventfd2', 0, flags));
  if (counter > 0n) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(counter, 0);
    const r = syscallRaw('write', fd, addressOf(b), 8);
    keepAlive(b);
    if (r !== 8n) {
      syscallRaw('close', fd);
      throw new SyscallError('write', Number(-r), 'eventfd counter');
    }
  }
  return fd;
}
export function epollCreate(flags: number): number {
  return Number(syscall('epoll_create1', flags));
}
/** A signalfd for the signals in `mask` (bit N-1 for signal N). */
export function signalfd(mask: bigint, flags: number): number {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  const fd = Number(syscall('signalfd4', -1, addressOf(b), 8, flags));
  keepAlive(b);
  return fd;
}

export interface TimerSpec {
  interval: { sec: bigint; nsec: number };
  value: { sec: bigint; nsec: number };
}

function timespecs(t: TimerSpec): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(t.interval.sec, 0);
  b.writeBigInt64LE(BigInt(t.interval.nsec), 8);
  b.writeBigInt64LE(t.value.sec, 16);
  b.writeBigInt64LE(BigInt(t.value.nsec), 24);
  return b;
}

export function clockGettime(clockid: number): { sec: bigint; nsec: number } {
  const b = Buffer.alloc(16);
  syscall('clock_gettime', clockid, addressOf(b));
  keepAlive(b);
  return { sec: b.readBigInt64LE(0), nsec: Number(b.readBigInt64LE(8)) };
}

const TFD_IOC_SET_TICKS = 0x40085400n;

/** A timerfd armed as `spec` (relative unless `settimeFlags` says absolute), with `ticks` expirations unread. */
export function timerfd(clockid: number, flags: number, settimeFlags: number, spec: TimerSpec, ticks: bigint): number {
  const fd = Number(syscall('timerfd_create', clockid, flags));
  try {
    if (spec.value.sec || spec.value.nsec) {
      const its = timespecs(spec);
      syscall('timerfd_settime', fd, settimeFlags, addressOf(its), 0);
      keepAlive(its);
    }
    if (ticks > 0n) {
      const t = Buffer.alloc(8);
      t.writeBigUInt64LE(ticks, 0);
      syscall('ioctl', fd, TFD_IOC_SET_TICKS, addressOf(t));
      keepAlive(t);
    }
    return fd;
  } catch (e) {
    syscallRaw('close', fd);
    throw e;
  }
}

/**
 * timerfd_gettime on a timerfd: besides reading the timer it brings an overdue periodic timer
 * up to date (its expirations counted, the next one armed), which fdinfo alone does not.
 */
export function timerfdGettime(fd: number): TimerSpec {
  const b = Buffer.alloc(32);
  syscall('timerfd_gettime', fd, addressOf(b));
  keepAlive(b);
  return {
    interval: { sec: b.readBigInt64LE(0), nsec: Number(b.readBigInt64LE(8)) },
    value: { sec: b.readBigInt64LE(16), nsec: Number(b.readBigInt64LE(24)) },
  };
}
