// Process-level syscalls the tool makes on its own behalf.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const KCMP_FILE = 0;

/** pidfd_open(pid, flags): `flags` may hold PIDFD_NONBLOCK (O_NONBLOCK) and PIDFD_THREAD (O_EXCL). */
export function pidfdOpen(pid: number, flags = 0): number {
  return Number(syscall('pidfd_open', pid, flags));
}

// PIDFD_GET_INFO (Linux 6.13) = _IOWR(0xff, 11, struct pidfd_info), its first version 64 bytes
// (include/uapi/linux/pidfd.h); PIDFD_INFO_EXIT (6.15) asks for exit_code, at offset 60.
const PIDFD_GET_INFO = 0xc040ff0b, PIDFD_INFO_EXIT = 8n, PIDFD_INFO_SIZE = 64;

/**
 * The wait status of the process behind `pidfd`, once it has exited and been reaped, as
 * pidfs keeps it; undefined while it runs, or where the kernel does not keep it.
 */
export function pidfdExitStatus(pidfd: number): number | undefined {
  const info = Buffer.alloc(PIDFD_INFO_SIZE);
  info.writeBigUInt64LE(PIDFD_INFO_EXIT, 0);
  const r = syscallRaw('ioctl', pidfd, PIDFD_GET_INFO, addressOf(info));
  keepAlive(info);
  if (r < 0n) return undefined;
  return info.readBigUInt64LE(0) & PIDFD_INFO_EXIT ? info.readInt32LE(60) : undefined;
}
/** Duplicates fd `targetFd` of the task behind `pidfd` into this process (with O_CLOEXEC). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return Number(syscall('pidfd_getfd', pidfd, targetFd, 0));
}
/** Runs `fn` on a copy (pidfd_getfd) of fd `fd` of task `pid`: the same open file, closed after. */
export function withTaskFd<T>(pid: number, fd: number, fn: (mine: number) => T): T {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      return fn(mine);
    } finally {
      closeFd(mine);
    }
  } finally {
    closeFd(pidfd);
  }
}
/** kcmp(KCMP_FILE): 0 same file object, 1 / 2 ordering, 3 not equal (no ordering). */
export function kcmpFile(pid1: number, pid2: number, fd1: number, fd2: number): number {
  return Number(syscall('kcmp', pid1, pid2, KCMP_FILE, fd1, fd2));
}
/** kcmp of two tasks' kernel objects (KCMP_FILES 2: the fd tables, KCMP_FS 3, KCMP_VM 1): 0 same, 1 / 2 ordering. */
export function kcmpTasks(pid1: number, pid2: number, type: number): number {
  return Number(syscall('kcmp', pid1, pid2, type, 0, 0));
}
/**
 * kcmp(KCMP_EPOLL_TFD): whether fd `fd` of `pid` is the file of the `toff`-th target added as
 * fd `tfd` (counted in the order fdinfo lists them) to epoll fd `efd` of `epollPid`.
 */
export function kcmpEpollTarget(pid: number, fd: number, epollPid: number, efd: number, tfd: number, toff: number): boolean {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(efd, 0);
  slot.writeUInt32LE(tfd, 4);
  slot.writeUInt32LE(toff, 8);
  const r = syscallRaw('kcmp', pid, epollPid, 7, fd, addressOf(slot));
  keepAlive(slot);
  return r === 0n;
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
/** linkat(2) between paths; AT_SYMLINK_FOLLOW (0x400) links the file a /proc/PID/fd/N link leads to. */
export function linkAt(oldPath: string, newPath: string, flags: number): void {
  const o = Buffer.from(oldPath + '\0'), n = Buffer.from(newPath + '\0');
  const r = syscallRaw('linkat', -100, addressOf(o), -100, addressOf(n), flags);
  keepAlive(o, n);
  if (r < 0n) throw new SyscallError('linkat', Number(-r), newPath);
}
/** mknodat(2) at a path: a device (dev in the userspace dev_t encoding, low 32 bits) or a FIFO. */
export function mknodAt(path: string, mode: number, dev: number): void {
  const p = Buffer.from(path + '\0');
  const r = syscallRaw('mknodat', -100, addressOf(p), mode, dev);
  keepAlive(p);
  if (r < 0n) throw new SyscallError('mknodat', Number(-r), path);
}
/** readlinkat(fd, ""): the target of the symlink an O_PATH fd holds. */
export function readlinkFd(fd: number): string {
  const empty = Buffer.from('\0'), buf = Buffer.alloc(4096);
  const r = syscallRaw('readlinkat', fd, addressOf(empty), addressOf(buf), buf.length);
  keepAlive(empty, buf);
  if (r < 0n) throw new SyscallError('readlinkat', Number(-r));
  return buf.subarray(0, Number(r)).toString();
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

const PR_SET_CHILD_SUBREAPER = 36;
/** Makes this process the reaper of its orphaned descendants (a tree another tool restored with -d is then its child). */
export function setChildSubreaper(on = true): void {
  syscall('prctl', PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0);
}
