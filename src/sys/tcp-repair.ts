// TCP sockets in repair mode (TCP_REPAIR, Linux 3.5+; include/uapi/linux/tcp.h): reading a
// connection's sequence numbers, options, windows and queues without touching the network, and
// building the same connection on a fresh socket. Also the raw IP socket that hands a socket a
// segment as if its peer had sent it (a FIN, an ACK), marked so that the network lock lets it
// through, and the queue sizes (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD).
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { AF_INET, AF_INET6, SOL_SOCKET, SOCK_CLOEXEC, socket } from './sockets.js';

export const SOL_TCP = 6;
export const TCP_MAXSEG = 2, TCP_CORK = 3, TCP_SYNCNT = 7, TCP_LINGER2 = 8, TCP_WINDOW_CLAMP = 10, TCP_INFO = 11;
export const TCP_CONGESTION = 13, TCP_USER_TIMEOUT = 18, TCP_REPAIR = 19, TCP_REPAIR_QUEUE = 20, TCP_QUEUE_SEQ = 21;
export const TCP_REPAIR_OPTIONS = 22, TCP_TIMESTAMP = 24, TCP_NOTSENT_LOWAT = 25, TCP_REPAIR_WINDOW = 29, TCP_ULP = 31;
/** TCP_REPAIR's values: off sends a window probe, off-no-wp does not. */
export const TCP_REPAIR_ON = 1, TCP_REPAIR_OFF = 0, TCP_REPAIR_OFF_NO_WP = -1;
/** TCP_REPAIR_QUEUE's values. */
export const TCP_NO_QUEUE = 0, TCP_RECV_QUEUE = 1, TCP_SEND_QUEUE = 2;
/** tcpi_options bits (TCPI_OPT_*). */
export const TCPI_OPT_TIMESTAMPS = 1, TCPI_OPT_SACK = 2, TCPI_OPT_WSCALE = 4;
/** TCP_REPAIR_OPTIONS codes (TCPOPT_*). */
export const TCPOPT_MAXSEG = 2, TCPOPT_WINDOW = 3, TCPOPT_SACK_PERM = 4, TCPOPT_TIMESTAMP = 8;
const SIOCINQ = 0x541b, SIOCOUTQ = 0x5411, SIOCOUTQNSD = 0x894b;
const SO_MARK = 36, SOCK_RAW = 3, IPPROTO_RAW = 255;
const EINTR = 4;

function check(name: Parameters<typeof syscallRaw>[0], r: bigint, what: string): number {
  if (r < 0n) throw new SyscallError(name, Number(-r), what);
  return Number(r);
}

/** The head of struct tcp_info: state and negotiated options. */
export interface TcpInfo {
  state: number;
  /** TCPI_OPT_* bits. */
  options: number;
  sndWscale: number;
  rcvWscale: number;
  backoff: number;
}

export function tcpInfo(fd: number): TcpInfo {
  const b = Buffer.alloc(8);
  const len = new Int32Array([b.length]);
  check('getsockopt', syscallRaw('getsockopt', fd, SOL_TCP, TCP_INFO, addressOf(b), addressOf(len)), `fd ${fd}, TCP_INFO`);
  keepAlive(b, len);
  // tcpi_snd_wscale:4, tcpi_rcv_wscale:4 share one byte, the first in its low bits.
  return { state: b[0]!, backoff: b[4]!, options: b[5]!, sndWscale: b[6]! & 0xf, rcvWscale: b[6]! >> 4 };
}

function ioctlInt(fd: number, req: number, what: string): number {
  const v = new Int32Array(1);
  check('ioctl', syscallRaw('ioctl', fd, req, addressOf(v)), `fd ${fd}, ${what}`);
  return v[0] ?? 0;
}

/** Bytes in the receive queue not read yet (a received FIN not counted). */
export const inqLen = (fd: number) => ioctlInt(fd, SIOCINQ, 'SIOCINQ');
/** Bytes in the send queue: sent but not acknowledged, and not sent yet (a FIN counts one). */
export const outqLen = (fd: number) => ioctlInt(fd, SIOCOUTQ, 'SIOCOUTQ');
/** Bytes of the send queue never sent. */
export const unsentLen = (fd: number) => ioctlInt(fd, SIOCOUTQNSD, 'SIOCOUTQNSD');

/** getsockopt of a 32-bit value that may be unsigned (sequence numbers). */
export function getsockoptU32(fd: number, level: number, opt: number): number {
  const v = new Uint32Array(1);
  const len = new Int32Array([4]);
  check('getsockopt', syscallRaw('getsockopt', fd, level, opt, addressOf(v), addressOf(len)), `fd ${fd}, option ${opt}`);
  return v[0] ?? 0;
}

export function setsockoptU32(fd: number, level: number, opt: number, value: number): void {
  const v = new Uint32Array([value >>> 0]);
  check('setsockopt', syscallRaw('setsockopt', fd, level, opt, addressOf(v), 4), `fd ${fd}, option ${opt} = ${value >>> 0}`);
}

/** A string option (TCP_CONGESTION, TCP_ULP): its bytes up to the first NUL. */
export function getsockoptString(fd: number, level: number, opt: number): string {
  const b = Buffer.alloc(64);
  const len = new Int32Array([b.length]);
  check('getsockopt', syscallRaw('getsockopt', fd, level, opt, addressOf(b), addressOf(len)), `fd ${fd}, option ${opt}`);
  const s = b.subarray(0, Math.max(0, len[0] ?? 0));
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? s.length : nul).toString('latin1');
}

export function setsockoptString(fd: number, level: number, opt: number, value: string): void {
  const b = Buffer.from(value, 'latin1');
  check('setsockopt', syscallRaw('setsockopt', fd, level, opt, addressOf(b), b.length), `fd ${fd}, option ${opt} = ${value}`);
}

/** struct tcp_repair_window (Linux 4.8). */
export interface TcpWindow {
  sndWl1: number;
  sndWnd: number;
  maxWindow: number;
  rcvWnd: number;
  rcvWup: number;
}

/** The window state of a socket in repair mode; undefined on a kernel before 4.8. */
export function getRepairWindow(fd: number): TcpWindow | undefined {
  const v = new Uint32Array(5);
  const len = new Int32Array([20]);
  const r = syscallRaw('getsockopt', fd, SOL_TCP, TCP_REPAIR_WINDOW, addressOf(v), addressOf(len));
  if (r === -92n) return undefined; // ENOPROTOOPT
  check('getsockopt', r, `fd ${fd}, TCP_REPAIR_WINDOW`);
  return { sndWl1: v[0]!, sndWnd: v[1]!, maxWindow: v[2]!, rcvWnd: v[3]!, rcvWup: v[4]! };
}

export function setRepairWindow(fd: number, w: TcpWindow): void {
  const v = new Uint32Array([w.sndWl1, w.sndWnd, w.maxWindow, w.rcvWnd, w.rcvWup].map((x) => x >>> 0));
  check('setsockopt', syscallRaw('setsockopt', fd, SOL_TCP, TCP_REPAIR_WINDOW, addressOf(v), 20), `fd ${fd}, TCP_REPAIR_WINDOW`);
}

/** TCP_REPAIR_OPTIONS: the options negotiated at the handshake, as [code, value] pairs. */
export function setRepairOptions(fd: number, opts: readonly (readonly [number, number])[]): void {
  const v = new Uint32Array(opts.flat().map((x) => x >>> 0));
  check('setsockopt', syscallRaw('setsockopt', fd, SOL_TCP, TCP_REPAIR_OPTIONS, addressOf(v), v.byteLength), `fd ${fd}, TCP_REPAIR_OPTIONS`);
}

/**
 * recv(2) with MSG_PEEK | MSG_DONTWAIT of up to `len` bytes of the queue TCP_REPAIR_QUEUE
 * selected (the send queue can only be read this way); asks for one byte more, so that a
 * queue longer than told is seen.
 */
export function peekQueue(fd: number, len: number): Buffer {
  if (len === 0) return Buffer.alloc(0);
  const buf = Buffer.alloc(len + 1);
  for (;;) {
    const r = syscallRaw('recvfrom', fd, addressOf(buf), buf.length, 0x2 | 0x40, 0, 0);
    if (r === -BigInt(EINTR)) continue;
    const n = check('recvfrom', r, `fd ${fd}, peeking ${len} queued bytes`);
    if (n !== len) throw new SyscallError('recvfrom', 5, `fd ${fd}: ${n} bytes queued, ${len} expected`);
    return buf.subarray(0, n);
  }
}

/**
 * send(2) of all of `data` (blocking): a repair-mode socket queues it as it is told, in as
 * large pieces as the kernel takes (a receive queue piece is one linear buffer: a large one can
 * fail with ENOMEM, and is split).
 */
export function sendAll(fd: number, data: Buffer): void {
  let off = 0, chunk = data.length;
  while (off < data.length) {
    const n = Math.min(chunk, data.length - off);
    const r = syscallRaw('sendto', fd, addressOf(data) + BigInt(off), n, 0x4000 /* MSG_NOSIGNAL */, 0, 0);
    if (r === -BigInt(EINTR)) continue;
    if (r <= 0n && chunk > 1024) {
      chunk >>= 1;
      continue;
    }
    off += check('sendto', r === 0n ? -5n : r, `fd ${fd}, ${n} of ${data.length} bytes`);
  }
  keepAlive(data);
}

/**
 * Sends a raw IPv4 or IPv6 packet (headers included) to `dst` (4 or 16 bytes), with SO_MARK
 * `mark` so that the network lock lets it pass.
 */
export function sendRawIp(family: number, packet: Buffer, dst: Buffer, mark: number): void {
  const fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  try {
    const m = new Int32Array([mark]);
    check('setsockopt', syscallRaw('setsockopt', fd, SOL_SOCKET, SO_MARK, addressOf(m), 4), 'SO_MARK');
    const sa = Buffer.alloc(family === AF_INET ? 16 : 28);
    sa.writeUInt16LE(family, 0);
    dst.copy(sa, family === AF_INET ? 4 : 8);
    if (family !== AF_INET && family !== AF_INET6) throw new SyscallError('sendto', 97, `family ${family}`);
    check('sendto', syscallRaw('sendto', fd, addressOf(packet), packet.length, 0, addressOf(sa), sa.length), `a raw ${packet.length}-byte packet`);
    keepAlive(packet, sa, m);
  } finally {
    syscallRaw('close', fd);
  }
}

/**
 * The peer of an IPv4/IPv6 socket through SO_PEERNAME, which (unlike getpeername) still
 * answers for a connection that was reset or closed; undefined when it never had one.
 */
export function peerNameInet(fd: number, family: number): { family: number; addr: number[]; port: number } | undefined {
  // The length asked for must not exceed the address's.
  const sa = Buffer.alloc(family === AF_INET ? 16 : 28);
  const len = new Int32Array([sa.length]);
  const r = syscallRaw('getsockopt', fd, SOL_SOCKET, 28 /* SO_PEERNAME */, addressOf(sa), addressOf(len));
  if (r === -107n) return undefined; // ENOTCONN
  check('getsockopt', r, `fd ${fd}, SO_PEERNAME`);
  const at = family === AF_INET ? 4 : 8, n = family === AF_INET ? 1 : 4;
  return { family, addr: Array.from({ length: n }, (_, i) => sa.readUInt32LE(at + 4 * i)), port: sa.readUInt16BE(2) };
}

/** SO_LINGER as [on, seconds]. */
export function getLinger(fd: number): [boolean, number] {
  const v = new Int32Array(2);
  const len = new Int32Array([8]);
  check('getsockopt', syscallRaw('getsockopt', fd, SOL_SOCKET, 13, addressOf(v), addressOf(len)), `fd ${fd}, SO_LINGER`);
  return [v[0] !== 0, v[1] ?? 0];
}

export function setLinger(fd: number, on: boolean, secs: number): void {
  const v = new Int32Array([on ? 1 : 0, secs]);
  check('setsockopt', syscallRaw('setsockopt', fd, SOL_SOCKET, 13, addressOf(v), 8), `fd ${fd}, SO_LINGER`);
}
