// Pipes in stasis itself: making one, copying a pipe's contents with tee(2) (which leaves
// them in place), and moving bytes through fds without Node's fs layer, so that EAGAIN on
// a non-blocking end comes back as a value instead of an exception.
import { addressOf, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;
export const SPLICE_F_NONBLOCK = 2;
const EAGAIN = 11, EINTR = 4;
const FIONREAD = 0x541b;

/** pipe2(flags): [read end, write end]. */
export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  syscall('pipe2', addressOf(fds), flags);
  return [fds[0] ?? -1, fds[1] ?? -1];
}

/** tee(2): duplicates up to `len` bytes from pipe `fdIn` into pipe `fdOut`; 0 when it would block. */
export function tee(fdIn: number, fdOut: number, len: number, flags: number): number {
  for (;;) {
    const r = syscallRaw('tee', fdIn, fdOut, len, flags);
    if (r === -BigInt(EINTR)) continue;
    if (r === -BigInt(EAGAIN)) return 0;
    if (r < 0n) throw new SyscallError('tee', Number(-r), `fd ${fdIn} -> fd ${fdOut}`);
    return Number(r);
  }
}

/** Bytes queued in a pipe (FIONREAD). */
export function pipeQueued(fd: number): number {
  const n = new Int32Array(1);
  syscall('ioctl', fd, FIONREAD, addressOf(n));
  return n[0] ?? 0;
}

/** read(2) into buf[off..off+len); -EAGAIN as -11, 0 at end of file. */
export function readRaw(fd: number, buf: Buffer, off: number, len: number): number {
  for (;;) {
    const r = syscallRaw('read', fd, addressOf(buf) + BigInt(off), len);
    if (r === -BigInt(EINTR)) continue;
    if (r < 0n && r !== -BigInt(EAGAIN)) throw new SyscallError('read', Number(-r), `fd ${fd}`);
    return Number(r);
  }
}

/** write(2) of buf[off..off+len); -EAGAIN as -11. */
export function writeRaw(fd: number, buf: Buffer, off: number, len: number): number {
  for (;;) {
    const r = syscallRaw('write', fd, addressOf(buf) + BigInt(off), len);
    if (r === -BigInt(EINTR)) continue;
    if (r < 0n && r !== -BigInt(EAGAIN)) throw new SyscallError('write', Number(-r), `fd ${fd}`);
    return Number(r);
  }
}

export const POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10;

/** poll(2) of one fd, without waiting or for up to `waitMs`: the events it reports (POLLERR on a pipe's write end: no reader is left). */
export function pollNow(fd: number, events: number, waitMs = 0): number {
  const p = Buffer.alloc(8);
  p.writeInt32LE(fd, 0);
  p.writeInt16LE(events, 4);
  for (;;) {
    const r = syscallRaw('poll', addressOf(p), 1, waitMs);
    if (r === -BigInt(EINTR)) continue;
    if (r < 0n) throw new SyscallError('poll', Number(-r), `fd ${fd}`);
    return p.readUInt16LE(6);
  }
}

/** splice(2) of up to `len` bytes from pipe `fdIn` into file `fdOut` at offset `off`; the bytes moved (0: the pipe is empty). */
export function spliceToFile(fdIn: number, fdOut: number, off: bigint, len: number): number {
  const pos = new BigInt64Array([off]);
  for (;;) {
    const r = syscallRaw('splice', fdIn, 0, fdOut, addressOf(pos), len, SPLICE_F_NONBLOCK);
    if (r === -BigInt(EINTR)) continue;
    if (r === -BigInt(EAGAIN)) return 0;
    if (r < 0n) throw new SyscallError('splice', Number(-r), `fd ${fdIn} -> fd ${fdOut}`);
    return Number(r);
  }
}
