// inotify and fanotify instances and opening an inode by its file handle, for restoring their watches and marks.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export function inotifyInit(flags: number): number {
  return Number(syscall('inotify_init1', flags));
}

/** The watch descriptor the kernel gave (a watch of an inode already watched keeps its own). */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  const p = Buffer.from(path + '\0');
  const r = syscallRaw('inotify_add_watch', fd, addressOf(p), mask >>> 0);
  keepAlive(p);
  if (r < 0n) throw new SyscallError('inotify_add_watch', Number(-r), path);
  return Number(r);
}

export function inotifyRmWatch(fd: number, wd: number): void {
  syscall('inotify_rm_watch', fd, wd);
}

/** open_by_handle_at(2): `mountFd` is any fd on the filesystem the handle belongs to. */
export function openByHandleAt(mountFd: number, type: number, handle: Buffer, flags: number): number {
  const fh = Buffer.alloc(8 + handle.length);
  fh.writeUInt32LE(handle.length, 0);
  fh.writeInt32LE(type, 4);
  handle.copy(fh, 8);
  const r = syscallRaw('open_by_handle_at', mountFd, addressOf(fh), flags);
  keepAlive(fh);
  if (r < 0n) throw new SyscallError('open_by_handle_at', Number(-r), `handle type ${type}`);
  return Number(r);
}

const FIONREAD = 0x541b;

/** Bytes of events queued on an inotify or fanotify instance. */
export function inotifyQueued(fd: number): number {
  const n = new Int32Array(1);
  syscall('ioctl', fd, FIONREAD, addressOf(n));
  keepAlive(n);
  return n[0] ?? 0;
}

export function fanotifyInit(flags: number, eventFlags: number): number {
  return Number(syscall('fanotify_init', flags >>> 0, eventFlags >>> 0));
}

/** fanotify_mark(2) on a path (AT_FDCWD-relative). */
export function fanotifyMark(fd: number, flags: number, mask: number, path: string): void {
  const p = Buffer.from(path + '\0');
  const r = syscallRaw('fanotify_mark', fd, flags >>> 0, BigInt(mask >>> 0), -100, addressOf(p));
  keepAlive(p);
  if (r < 0n) throw new SyscallError('fanotify_mark', Number(-r), path);
}
