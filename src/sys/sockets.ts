// Sockets in stasis itself: making Unix sockets (pairs, bound, listening, connected), their
// options, and moving messages without consuming them (MSG_PEEK) or without blocking.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16;
export const IPPROTO_IP = 0, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
export const SO_REUSEADDR = 2, SO_BROADCAST = 6, SO_KEEPALIVE = 9, SO_OOBINLINE = 10, SO_LINGER = 13, SO_REUSEPORT = 15;
export const SO_BINDTODEVICE = 25, SO_DOMAIN = 39, SO_PROTOCOL = 38, SO_TYPE = 3, SO_BUF_LOCK = 72;
export const TCP_NODELAY = 1, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6, TCP_DEFER_ACCEPT = 9;
export const IP_FREEBIND = 15, IPV6_V6ONLY = 26;
export const SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7, SO_RCVBUF = 8, SO_PASSCRED = 16, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, SO_PASSSEC = 34;
export const SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33, SO_PEEK_OFF = 42;
export const SO_DONTROUTE = 5, SO_NO_CHECK = 11, SO_PRIORITY = 12, SO_RCVLOWAT = 18, SO_MARK = 36;
export const MSG_PEEK = 2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_CTRUNC = 8, MSG_NOSIGNAL = 0x4000;
export const SHUT_RD = 0, SHUT_WR = 1;
export const SOCK_RAW = 3, IPPROTO_UDPLITE = 136, SOL_RAW = 255, SOL_ICMPV6 = 58;
export const IP_TOS = 1, IP_TTL = 2, IP_HDRINCL = 3, IP_PKTINFO = 8, IP_NODEFRAG = 22, IPV6_RECVPKTINFO = 49;
export const ICMP_FILTER = 1, ICMPV6_FILTER = 1, SO_ATTACH_FILTER = 26, SO_GET_FILTER = 26, UDP_CORK = 1;
export const IP_MULTICAST_IF = 32, IP_MULTICAST_TTL = 33, IP_MULTICAST_LOOP = 34, IP_MULTICAST_ALL = 49;
export const MCAST_JOIN_GROUP = 42, MCAST_BLOCK_SOURCE = 43, MCAST_JOIN_SOURCE_GROUP = 46, MCAST_MSFILTER = 48;
export const MCAST_EXCLUDE = 0, MCAST_INCLUDE = 1;
export const IPV6_MULTICAST_IF = 17, IPV6_MULTICAST_HOPS = 18, IPV6_MULTICAST_LOOP = 19, IPV6_MULTICAST_ALL = 29;
const SCM_RIGHTS = 1, SCM_CREDENTIALS = 2;
const EAGAIN = 11, EINTR = 4;
const SUN_PATH_MAX = 108;

function check(name: Parameters<typeof syscallRaw>[0], r: bigint, what: string): number {
  if (r < 0n) throw new SyscallError(name, Number(-r), what);
  return Number(r);
}

export function socket(domain: number, type: number, protocol = 0): number {
  return check('socket', syscallRaw('socket', domain, type, protocol), `domain ${domain}, type ${type}`);
}

/** socketpair(AF_UNIX, type): two connected ends. */
export function socketpair(type: number): [number, number] {
  const fds = new Int32Array(2);
  check('socketpair', syscallRaw('socketpair', AF_UNIX, type, 0, addressOf(fds)), `type ${type}`);
  return [fds[0] ?? -1, fds[1] ?? -1];
}

/** A struct sockaddr_un for `name` (raw bytes: an abstract name starts with a NUL), and its length. */
function sockaddrUn(name: Buffer): [Buffer, number] {
  if (name.length > SUN_PATH_MAX) throw new SyscallError('bind', 36, 'name too long');
  const sa = Buffer.alloc(2 + SUN_PATH_MAX);
  sa.writeUInt16LE(AF_UNIX, 0);
  name.copy(sa, 2);
  return [sa, 2 + name.length];
}

export function bindUnix(fd: number, name: Buffer): void {
  const [sa, len] = sockaddrUn(name);
  check('bind', syscallRaw('bind', fd, addressOf(sa), len), name.toString());
}

/**
 * The file a path-bound Unix socket is bound to, opened O_PATH (SIOCUNIXFILE, Linux 4.10):
 * found by its inode, so also once it was unlinked or moved. ENOENT for a socket not bound to a path.
 */
export function unixSocketFile(fd: number): number {
  const SIOCUNIXFILE = 0x89e0; // SIOCPROTOPRIVATE + 0
  return check('ioctl', syscallRaw('ioctl', fd, SIOCUNIXFILE, 0), 'SIOCUNIXFILE');
}

export function connectUnix(fd: number, name: Buffer): void {
  const [sa, len] = sockaddrUn(name);
  for (;;) {
    const r = syscallRaw('connect', fd, addressOf(sa), len);
    if (r === -BigInt(EINTR)) continue;
    check('connect', r, name.toString());
    return;
  }
}

/**
 * A struct sockaddr_in / sockaddr_in6 for an address given as the kernel's 32-bit words (one for
 * IPv4, four for IPv6, as /proc/net/tcp prints them) and a port in host order.
 */
function sockaddrInet(family: number, addr: readonly number[], port: number): Buffer {
  const sa = Buffer.alloc(family === AF_INET ? 16 : 28);
  sa.writeUInt16LE(family, 0);
  sa.writeUInt16BE(port, 2);
  const at = family === AF_INET ? 4 : 8;
  addr.forEach((w, i) => sa.writeUInt32LE(w >>> 0, at + 4 * i));
  return sa;
}

export function bindInet(fd: number, family: number, addr: readonly number[], port: number): void {
  const sa = sockaddrInet(family, addr, port);
  check('bind', syscallRaw('bind', fd, addressOf(sa), sa.length), `port ${port}`);
}

export function connectInet(fd: number, family: number, addr: readonly number[], port: number): void {
  const sa = sockaddrInet(family, addr, port);
  for (;;) {
    const r = syscallRaw('connect', fd, addressOf(sa), sa.length);
    if (r === -BigInt(EINTR)) continue;
    check('connect', r, `port ${port}`);
    return;
  }
}

/** getsockname of an IPv4 or IPv6 socket: its address words and port. */
export function getsocknameInet(fd: number): { family: number; addr: number[]; port: number } {
  const sa = Buffer.alloc(28);
  const len = new Int32Array([sa.length]);
  check('getsockname', syscallRaw('getsockname', fd, addressOf(sa), addressOf(len)), `fd ${fd}`);
  const family = sa.readUInt16LE(0);
  const at = family === AF_INET ? 4 : 8, n = family === AF_INET ? 1 : 4;
  return { family, addr: Array.from({ length: n }, (_, i) => sa.readUInt32LE(at + 4 * i)), port: sa.readUInt16BE(2) };
}

export function listen(fd: number, backlog: number): void {
  check('listen', syscallRaw('listen', fd, backlog), `fd ${fd}`);
}

export function accept4(fd: number, flags: number): number {
  for (;;) {
    const r = syscallRaw('accept4', fd, 0, 0, flags);
    if (r === -BigInt(EINTR)) continue;
    return check('accept4', r, `fd ${fd}`);
  }
}

/** poll(2) for POLLIN on one fd: true once it is readable (a listener: a connection waits), false after timeoutMs. */
export function pollIn(fd: number, timeoutMs: number): boolean {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(1, 4); // POLLIN
  const r = syscallRaw('poll', addressOf(pfd), 1, timeoutMs);
  if (r === -BigInt(EINTR)) return false;
  return check('poll', r, `fd ${fd}`) > 0;
}

export function shutdown(fd: number, how: number): void {
  check('shutdown', syscallRaw('shutdown', fd, how), `fd ${fd}`);
}

/** The bound name of a Unix socket (raw bytes, without the trailing NUL of a path). */
export function getsocknameUnix(fd: number, peer = false): Buffer {
  const sa = Buffer.alloc(2 + SUN_PATH_MAX);
  const len = new Int32Array([sa.length]);
  check(peer ? 'getpeername' : 'getsockname', syscallRaw(peer ? 'getpeername' : 'getsockname', fd, addressOf(sa), addressOf(len)), `fd ${fd}`);
  let name = sa.subarray(2, Math.max(2, len[0] ?? 2));
  if (name.length && name[0] !== 0 && name[name.length - 1] === 0) name = name.subarray(0, name.indexOf(0));
  return Buffer.from(name);
}

export function getsockoptInt(fd: number, level: number, opt: number): number {
  const v = new Int32Array(1);
  const len = new Int32Array([4]);
  check('getsockopt', syscallRaw('getsockopt', fd, level, opt, addressOf(v), addressOf(len)), `fd ${fd}, option ${opt}`);
  return v[0] ?? 0;
}

export function setsockoptInt(fd: number, level: number, opt: number, value: number): void {
  const v = new Int32Array([value]);
  check('setsockopt', syscallRaw('setsockopt', fd, level, opt, addressOf(v), 4), `fd ${fd}, option ${opt} = ${value}`);
}

/** An option of any size: its bytes (at most `max`). */
export function getsockoptBytes(fd: number, level: number, opt: number, max: number): Buffer {
  const b = Buffer.alloc(max);
  const len = new Int32Array([max]);
  check('getsockopt', syscallRaw('getsockopt', fd, level, opt, addressOf(b), addressOf(len)), `fd ${fd}, option ${opt}`);
  return b.subarray(0, Math.min(max, len[0] ?? 0));
}

/** An option whose request is in the buffer it answers in (MCAST_MSFILTER): the bytes the kernel wrote back. */
export function getsockoptInOut(fd: number, level: number, opt: number, buf: Buffer): Buffer {
  const len = new Int32Array([buf.length]);
  check('getsockopt', syscallRaw('getsockopt', fd, level, opt, addressOf(buf), addressOf(len)), `fd ${fd}, option ${opt}`);
  return buf.subarray(0, Math.min(buf.length, len[0] ?? 0));
}

export function setsockoptBytes(fd: number, level: number, opt: number, value: Buffer): void {
  check('setsockopt', syscallRaw('setsockopt', fd, level, opt, addressOf(value), value.length), `fd ${fd}, option ${opt}`);
}

/** The classic BPF program attached (SO_GET_FILTER): each struct sock_filter as 8 bytes; empty without one. */
export function getSocketFilter(fd: number): Buffer[] {
  const len = new Int32Array([0]);
  // With a zero length the kernel answers with the number of instructions.
  check('getsockopt', syscallRaw('getsockopt', fd, SOL_SOCKET, SO_GET_FILTER, 0, addressOf(len)), `fd ${fd}, SO_GET_FILTER`);
  const n = len[0] ?? 0;
  if (n <= 0) return [];
  const b = Buffer.alloc(8 * n);
  const blen = new Int32Array([n]);
  check('getsockopt', syscallRaw('getsockopt', fd, SOL_SOCKET, SO_GET_FILTER, addressOf(b), addressOf(blen)), `fd ${fd}, SO_GET_FILTER`);
  return Array.from({ length: Math.min(n, blen[0] ?? 0) }, (_, i) => b.subarray(8 * i, 8 * i + 8));
}

/** SO_ATTACH_FILTER of a classic BPF program given as 8-byte instructions. */
export function attachSocketFilter(fd: number, insns: Buffer[]): void {
  const prog = Buffer.concat(insns);
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(insns.length, 0);
  fprog.writeBigUInt64LE(addressOf(prog), 8);
  check('setsockopt', syscallRaw('setsockopt', fd, SOL_SOCKET, SO_ATTACH_FILTER, addressOf(fprog), 16), `fd ${fd}, SO_ATTACH_FILTER`);
  keepAlive(prog);
}

/** SO_SNDTIMEO / SO_RCVTIMEO as [seconds, microseconds]. */
export function getsockoptTimeval(fd: number, opt: number): [bigint, bigint] {
  const v = new BigInt64Array(2);
  const len = new Int32Array([16]);
  check('getsockopt', syscallRaw('getsockopt', fd, SOL_SOCKET, opt, addressOf(v), addressOf(len)), `fd ${fd}, option ${opt}`);
  return [v[0] ?? 0n, v[1] ?? 0n];
}

export function setsockoptTimeval(fd: number, opt: number, sec: bigint, usec: bigint): void {
  const v = new BigInt64Array([sec, usec]);
  check('setsockopt', syscallRaw('setsockopt', fd, SOL_SOCKET, opt, addressOf(v), 16), `fd ${fd}, option ${opt}`);
}

export interface Received {
  /** Bytes copied, or (with MSG_TRUNC on a datagram socket) the message's whole length; -11 for EAGAIN. */
  n: number;
  msgFlags: number;
  /** Control messages that came with it: SCM_RIGHTS (the fds it carried were closed, or kept in `fds`) or SCM_CREDENTIALS. */
  rights: boolean;
  fds: number[];
  creds: boolean;
  /** The sender's address (a datagram from a bound socket), empty when it has none. */
  from: Buffer;
}

/** recvmsg(2) into buf[off..off+len); control messages are reported, fds they carry closed (or kept, with `keepFds`). */
export function recvmsgInto(fd: number, buf: Buffer, off: number, len: number, flags: number, keepFds = false): Received {
  const iov = new BigUint64Array([addressOf(buf) + BigInt(off), BigInt(len)]);
  const control = Buffer.alloc(512);
  const name = Buffer.alloc(2 + SUN_PATH_MAX);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(addressOf(name), 0);
  msg.writeUInt32LE(name.length, 8);
  msg.writeBigUInt64LE(addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(addressOf(control), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  let r: bigint;
  do r = syscallRaw('recvmsg', fd, addressOf(msg), flags);
  while (r === -BigInt(EINTR));
  if (r === -BigInt(EAGAIN)) return { n: -EAGAIN, msgFlags: 0, rights: false, creds: false, fds: [], from: Buffer.alloc(0) };
  const n = check('recvmsg', r, `fd ${fd}`);
  const from = Buffer.from(name.subarray(2, Math.max(2, Math.min(name.length, msg.readUInt32LE(8)))));
  const out: Received = { n, msgFlags: msg.readInt32LE(48), rights: false, creds: false, fds: [], from };
  const clen = Number(msg.readBigUInt64LE(40));
  for (let at = 0; at + 16 <= clen;) {
    const cl = Number(control.readBigUInt64LE(at));
    if (cl < 16) break;
    const level = control.readInt32LE(at + 8), type = control.readInt32LE(at + 12);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      out.rights = true;
      for (let p = at + 16; p + 4 <= at + cl; p += 4) {
        if (keepFds) out.fds.push(control.readInt32LE(p));
        else syscallRaw('close', control.readInt32LE(p));
      }
    }
    if (level === SOL_SOCKET && type === SCM_CREDENTIALS) out.creds = true;
    at += (cl + 7) & ~7;
  }
  return out;
}

/** send(2) of buf[off..off+len) with `flags`; -11 for EAGAIN. */
export function sendRaw(fd: number, buf: Buffer, off: number, len: number, flags: number): number {
  for (;;) {
    const r = syscallRaw('sendto', fd, addressOf(buf) + BigInt(off), len, flags, 0, 0);
    if (r === -BigInt(EINTR)) continue;
    if (r === -BigInt(EAGAIN)) return -EAGAIN;
    return check('sendto', r, `fd ${fd}, ${len} bytes`);
  }
}
