// Message sockets of CRIU's RPC (SOCK_SEQPACKET): whole messages of any length, fds passed
// with a message (SCM_RIGHTS), the peer's credentials (SO_PEERCRED), and the listening
// socket of `stasis service`.
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { AF_UNIX, SOCK_SEQPACKET, SOCK_CLOEXEC, SOL_SOCKET, MSG_PEEK, MSG_TRUNC, bindUnix, listen, socket } from './sockets.js';

const SO_PEERCRED = 17, SCM_RIGHTS = 1, MSG_CMSG_CLOEXEC = 0x40000000, MSG_NOSIGNAL = 0x4000;
const EINTR = 4;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** SO_PEERCRED: who is at the other end of a connected Unix socket (as of its connect or socketpair). */
export function peerCred(fd: number): PeerCred {
  const v = new Int32Array(3);
  const len = new Int32Array([12]);
  const r = syscallRaw('getsockopt', fd, SOL_SOCKET, SO_PEERCRED, addressOf(v), addressOf(len));
  keepAlive(v, len);
  if (r < 0n) throw new SyscallError('getsockopt', Number(-r), `SO_PEERCRED of fd ${fd}`);
  return { pid: v[0] ?? 0, uid: v[1] ?? 0, gid: v[2] ?? 0 };
}

function retry(name: 'recvmsg' | 'sendmsg' | 'recvfrom', f: () => bigint, what: string): number {
  for (;;) {
    const r = f();
    if (r === -BigInt(EINTR)) continue;
    if (r < 0n) throw new SyscallError(name, Number(-r), what);
    return Number(r);
  }
}

/**
 * Receives one whole message (blocking); null when the peer has closed the connection.
 * Fds that came with it are returned (close-on-exec in this process).
 */
export function recvMessage(fd: number): { data: Buffer; fds: number[] } | null {
  const probe = Buffer.alloc(1);
  // MSG_TRUNC on a seqpacket socket returns the message's real length; MSG_PEEK leaves it queued.
  const size = retry('recvfrom', () => syscallRaw('recvfrom', fd, addressOf(probe), 1, MSG_PEEK | MSG_TRUNC, 0, 0), `fd ${fd}`);
  if (size === 0) {
    // A zero-length message is not a request; a closed peer reads as 0 too: tell them apart.
    const n = retry('recvfrom', () => syscallRaw('recvfrom', fd, addressOf(probe), 1, 0, 0, 0), `fd ${fd}`);
    return n === 0 ? null : { data: Buffer.alloc(0), fds: [] };
  }
  const data = Buffer.alloc(size);
  const iov = new BigUint64Array([addressOf(data), BigInt(size)]);
  const control = Buffer.alloc(256);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(addressOf(control), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  const n = retry('recvmsg', () => syscallRaw('recvmsg', fd, addressOf(msg), MSG_CMSG_CLOEXEC), `fd ${fd}`);
  keepAlive(data, iov, control, msg);
  const fds: number[] = [];
  const clen = Number(msg.readBigUInt64LE(40));
  for (let at = 0; at + 16 <= clen;) {
    const cl = Number(control.readBigUInt64LE(at));
    if (cl < 16) break;
    if (control.readInt32LE(at + 8) === SOL_SOCKET && control.readInt32LE(at + 12) === SCM_RIGHTS) {
      for (let p = at + 16; p + 4 <= at + cl; p += 4) fds.push(control.readInt32LE(p));
    }
    at += (cl + 7) & ~7;
  }
  return { data: data.subarray(0, n), fds };
}

/** Sends one message, with fds of this process attached (SCM_RIGHTS) when given. */
export function sendMessage(fd: number, data: Uint8Array, fds: number[] = []): void {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const iov = new BigUint64Array([addressOf(buf), BigInt(buf.length)]);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  let control = Buffer.alloc(0);
  if (fds.length) {
    const len = 16 + 4 * fds.length;
    control = Buffer.alloc((len + 7) & ~7);
    control.writeBigUInt64LE(BigInt(len), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((f, i) => control.writeInt32LE(f, 16 + 4 * i));
    msg.writeBigUInt64LE(addressOf(control), 32);
    msg.writeBigUInt64LE(BigInt(control.length), 40);
  }
  retry('sendmsg', () => syscallRaw('sendmsg', fd, addressOf(msg), MSG_NOSIGNAL), `fd ${fd}, ${buf.length} bytes`);
  keepAlive(buf, iov, msg, control);
}

/** A listening SOCK_SEQPACKET socket bound to `path` (CRIU's service socket). */
export function listenSeqpacket(path: string, backlog = 16): number {
  const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
  try {
    bindUnix(fd, Buffer.from(path));
    listen(fd, backlog);
    return fd;
  } catch (e) {
    syscallRaw('close', fd);
    throw e;
  }
}
