// Advisory locks taken by stasis itself on the files it opened for a restore (flock and OFD
// locks belong to the open file, which the task then shares), and the struct flock an
// injected fcntl(F_SETLK) reads in the task.
import { addressOf, keepAlive, syscallRaw } from './libc.js';

export const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
export const F_SETLK = 6, F_OFD_SETLK = 37;
const SEEK_SET = 0;

/** flock(2); returns 0 or -errno. */
export function flockFd(fd: number, op: number): number {
  return Number(syscallRaw('flock', fd, op));
}

/** struct flock (x86_64): l_type, l_whence (short), l_start, l_len (off_t), l_pid. */
export function flockStruct(type: number, start: bigint, len: bigint): Buffer {
  const b = Buffer.alloc(32);
  b.writeInt16LE(type, 0);
  b.writeInt16LE(SEEK_SET, 2);
  b.writeBigInt64LE(start, 8);
  b.writeBigInt64LE(len, 16);
  return b;
}

/** fcntl(fd, cmd, &struct flock) in this process; returns 0 or -errno. */
export function setLockFd(fd: number, cmd: number, type: number, start: bigint, len: bigint): number {
  const b = flockStruct(type, start, len);
  const r = Number(syscallRaw('fcntl', fd, cmd, addressOf(b)));
  keepAlive(b);
  return r;
}
