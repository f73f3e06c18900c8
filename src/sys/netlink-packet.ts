// Netlink and packet sockets: the kernel's view of each of this network namespace's through
// NETLINK_SOCK_DIAG (net/netlink/diag.c, net/packet/diag.c; what `ss -0` / `ss --netlink`
// and CRIU read), and their addresses (struct sockaddr_nl, sockaddr_ll, SOCK_PACKET's sockaddr).
import { addressOf, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { sockDiagDump } from './sock-diag.js';
import { vmRead } from './task-mem.js';
import { AF_NETLINK, SOL_SOCKET, getsockoptBytes } from './sockets.js';

export const AF_PACKET = 17, SOL_PACKET = 263, SOL_NETLINK = 270, SOCK_PACKET = 10;
export const PACKET_ADD_MEMBERSHIP = 1, PACKET_RX_RING = 5, PACKET_AUXDATA = 8, PACKET_ORIGDEV = 9, PACKET_VERSION = 10;
export const PACKET_RESERVE = 12, PACKET_TX_RING = 13, PACKET_LOSS = 14, PACKET_VNET_HDR = 15, PACKET_TX_TIMESTAMP = 16;
export const PACKET_TIMESTAMP = 17, PACKET_FANOUT = 18, PACKET_TX_HAS_OFF = 19, PACKET_QDISC_BYPASS = 20;
export const PACKET_IGNORE_OUTGOING = 23, PACKET_VNET_HDR_SZ = 24, PACKET_COPY_THRESH = 7;
export const NETLINK_EXT_ACK = 11, NETLINK_GET_STRICT_CHK = 12;
const SO_NETNS_COOKIE = 71, SIOCGIFNAME = 0x8910, SIOCGIFINDEX = 0x8933;

/** sk_meminfo's words (SK_MEMINFO_*): receive memory in use, send memory in use. */
const MEMINFO_RMEM_ALLOC = 0, MEMINFO_WMEM_ALLOC = 2;

/** One netlink socket as sock_diag reports it (struct netlink_diag_msg and its attributes). */
export interface NetlinkDiag {
  ino: number;
  protocol: number;
  /** 1: connected (NETLINK_CONNECTED). */
  state: number;
  portid: number;
  dstPortid: number;
  /** The group connect() named, as a number (0: none). */
  dstGroup: number;
  /** The group bitmask it listens on, as 32-bit words (as many as the protocol has groups, rounded to longs). */
  groups: number[];
  /** NDIAG_FLAG_*: a dump running, NETLINK_PKTINFO, BROADCAST_ERROR, NO_ENOBUFS, LISTEN_ALL_NSID, CAP_ACK. */
  flags: number;
  rmemAlloc: number;
  wmemAlloc: number;
}

export const NDIAG_FLAG = { CB_RUNNING: 1, PKTINFO: 2, BROADCAST_ERROR: 4, NO_ENOBUFS: 8, LISTEN_ALL_NSID: 0x10, CAP_ACK: 0x20 } as const;

/** Every netlink socket of the caller's network namespace that is bound or listens on a group, by inode. */
export function netlinkSockets(): Map<number, NetlinkDiag> {
  const NDIAG_PROTO_ALL = 255, NDIAG_SHOW_MEMINFO = 1, NDIAG_SHOW_GROUPS = 2, NDIAG_SHOW_FLAGS = 8;
  const NETLINK_DIAG_MEMINFO = 0, NETLINK_DIAG_GROUPS = 1, NETLINK_DIAG_FLAGS = 4;
  const req = Buffer.alloc(20);
  req.writeUInt8(AF_NETLINK, 0);
  req.writeUInt8(NDIAG_PROTO_ALL, 1);
  req.writeUInt32LE(NDIAG_SHOW_MEMINFO | NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS, 8);
  const out = new Map<number, NetlinkDiag>();
  sockDiagDump(req, 'netlink socket dump', (m) => {
    const d: NetlinkDiag = {
      protocol: m.readUInt8(2), state: m.readUInt8(3), portid: m.readUInt32LE(4), dstPortid: m.readUInt32LE(8),
      dstGroup: m.readUInt32LE(12), ino: m.readUInt32LE(16), groups: [], flags: 0, rmemAlloc: 0, wmemAlloc: 0,
    };
    forAttrs(m, 28, (type, v) => {
      if (type === NETLINK_DIAG_GROUPS) for (let i = 0; i + 4 <= v.length; i += 4) d.groups.push(v.readUInt32LE(i));
      else if (type === NETLINK_DIAG_FLAGS && v.length >= 4) d.flags = v.readUInt32LE(0);
      else if (type === NETLINK_DIAG_MEMINFO && v.length >= 12) {
        d.rmemAlloc = v.readUInt32LE(4 * MEMINFO_RMEM_ALLOC);
        d.wmemAlloc = v.readUInt32LE(4 * MEMINFO_WMEM_ALLOC);
      }
    });
    out.set(d.ino, d);
  });
  return out;
}

/** struct packet_diag_ring: a ring as tpacket_req3 set it. */
export interface PacketRingDiag {
  blockSize: number;
  blockNr: number;
  frameSize: number;
  frameNr: number;
  retireTmo: number;
  sizeofPriv: number;
  features: number;
}

/** One PACKET_ADD_MEMBERSHIP (struct packet_diag_mclist). */
export interface PacketMcDiag {
  index: number;
  /** How many times it was added. */
  count: number;
  type: number;
  addr: Buffer;
}

/** One packet socket as sock_diag reports it (struct packet_diag_msg and its attributes). */
export interface PacketDiag {
  ino: number;
  type: number;
  /** The protocol it receives, in host order (0: none). */
  num: number;
  /** struct packet_diag_info */
  ifindex: number;
  version: number;
  reserve: number;
  copyThresh: number;
  tstamp: number;
  /** PDI_*: running (hooked to receive), AUXDATA, ORIGDEV, VNET_HDR, LOSS. */
  flags: number;
  mclist: PacketMcDiag[];
  rxRing?: PacketRingDiag;
  txRing?: PacketRingDiag;
  /** PACKET_FANOUT's value (id | type << 16 | flags << 24); undefined without a fanout group. */
  fanout?: number;
  rmemAlloc: number;
  wmemAlloc: number;
}

export const PDI = { RUNNING: 1, AUXDATA: 2, ORIGDEV: 4, VNETHDR: 8, LOSS: 0x10 } as const;

/** Every packet socket of the caller's network namespace, by inode. */
export function packetSockets(): Map<number, PacketDiag> {
  const SHOW = 1 | 2 | 4 | 8 | 0x10; // INFO, MCLIST, RING_CFG, FANOUT, MEMINFO
  const INFO = 0, MCLIST = 1, RX_RING = 2, TX_RING = 3, FANOUT = 4, MEMINFO = 6;
  const req = Buffer.alloc(20);
  req.writeUInt8(AF_PACKET, 0);
  req.writeUInt32LE(SHOW, 8);
  const out = new Map<number, PacketDiag>();
  const ring = (v: Buffer): PacketRingDiag => ({
    blockSize: v.readUInt32LE(0), blockNr: v.readUInt32LE(4), frameSize: v.readUInt32LE(8), frameNr: v.readUInt32LE(12),
    retireTmo: v.readUInt32LE(16), sizeofPriv: v.readUInt32LE(20), features: v.readUInt32LE(24),
  });
  sockDiagDump(req, 'packet socket dump', (m) => {
    const d: PacketDiag = {
      type: m.readUInt8(1), num: m.readUInt16LE(2), ino: m.readUInt32LE(4),
      ifindex: 0, version: 0, reserve: 0, copyThresh: 0, tstamp: 0, flags: 0, mclist: [], rmemAlloc: 0, wmemAlloc: 0,
    };
    forAttrs(m, 16, (type, v) => {
      if (type === INFO && v.length >= 24) {
        Object.assign(d, {
          ifindex: v.readUInt32LE(0), version: v.readUInt32LE(4), reserve: v.readUInt32LE(8), copyThresh: v.readUInt32LE(12),
          tstamp: v.readUInt32LE(16), flags: v.readUInt32LE(20),
        });
      } else if (type === MCLIST) {
        for (let at = 0; at + 44 <= v.length; at += 44) {
          const alen = Math.min(32, v.readUInt16LE(at + 10));
          d.mclist.push({ index: v.readUInt32LE(at), count: v.readUInt32LE(at + 4), type: v.readUInt16LE(at + 8), addr: Buffer.from(v.subarray(at + 12, at + 12 + alen)) });
        }
      } else if (type === RX_RING && v.length >= 28) d.rxRing = ring(v);
      else if (type === TX_RING && v.length >= 28) d.txRing = ring(v);
      else if (type === FANOUT && v.length >= 4) d.fanout = v.readUInt32LE(0);
      else if (type === MEMINFO && v.length >= 12) {
        d.rmemAlloc = v.readUInt32LE(4 * MEMINFO_RMEM_ALLOC);
        d.wmemAlloc = v.readUInt32LE(4 * MEMINFO_WMEM_ALLOC);
      }
    });
    out.set(d.ino, d);
  });
  return out;
}

function forAttrs(m: Buffer, from: number, fn: (type: number, v: Buffer) => void): void {
  for (let at = from; at + 4 <= m.length;) {
    const len = m.readUInt16LE(at), type = m.readUInt16LE(at + 2) & 0x3fff;
    if (len < 4 || at + len > m.length) break;
    fn(type, m.subarray(at + 4, at + len));
    at += (len + 3) & ~3;
  }
}

/** SO_NETNS_COOKIE (Linux 5.14): which network namespace a socket belongs to. */
export function netnsCookie(fd: number): bigint {
  return getsockoptBytes(fd, SOL_SOCKET, SO_NETNS_COOKIE, 8).readBigUInt64LE(0);
}

function check(name: 'bind' | 'connect' | 'ioctl' | 'getsockname', r: bigint, what: string): void {
  if (r < 0n) throw new SyscallError(name, Number(-r), what);
}

function sockaddrNl(portid: number, groups: number): Buffer {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(portid >>> 0, 4);
  sa.writeUInt32LE(groups >>> 0, 8);
  return sa;
}

export function bindNetlink(fd: number, portid: number, groups: number): void {
  const sa = sockaddrNl(portid, groups);
  check('bind', syscallRaw('bind', fd, addressOf(sa), sa.length), `netlink port ${portid}, groups 0x${(groups >>> 0).toString(16)}`);
}

export function connectNetlink(fd: number, portid: number, groups: number): void {
  const sa = sockaddrNl(portid, groups);
  check('connect', syscallRaw('connect', fd, addressOf(sa), sa.length), `netlink port ${portid}, groups 0x${(groups >>> 0).toString(16)}`);
}

/** bind() of a packet socket to an interface (0: every one); the protocol stays socket()'s. */
export function bindPacket(fd: number, ifindex: number): void {
  const sa = Buffer.alloc(20); // struct sockaddr_ll
  sa.writeUInt16LE(AF_PACKET, 0);
  sa.writeInt32LE(ifindex, 4);
  check('bind', syscallRaw('bind', fd, addressOf(sa), sa.length), `packet socket on interface ${ifindex}`);
}

/** bind() of a SOCK_PACKET socket: it takes the interface's name. */
export function bindSpkt(fd: number, ifname: string): void {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_PACKET, 0);
  sa.write(ifname, 2, 13, 'latin1');
  check('bind', syscallRaw('bind', fd, addressOf(sa), sa.length), `SOCK_PACKET socket on ${ifname}`);
}

/** getsockname() of a socket: the raw struct sockaddr. */
export function getsocknameRaw(fd: number): Buffer {
  const sa = Buffer.alloc(128);
  const len = new Int32Array([sa.length]);
  check('getsockname', syscallRaw('getsockname', fd, addressOf(sa), addressOf(len)), `fd ${fd}`);
  return sa.subarray(0, Math.min(sa.length, len[0] ?? 0));
}

/** SIOCGIFNAME through socket `fd`: the name of interface `ifindex` of the socket's network namespace. */
export function ifName(fd: number, ifindex: number): string {
  const ifr = Buffer.alloc(40);
  ifr.writeInt32LE(ifindex, 16);
  check('ioctl', syscallRaw('ioctl', fd, SIOCGIFNAME, addressOf(ifr)), `SIOCGIFNAME ${ifindex}`);
  const name = ifr.subarray(0, 16);
  return name.subarray(0, name.includes(0) ? name.indexOf(0) : 16).toString('latin1');
}

/** SIOCGIFINDEX through socket `fd`: the index of interface `name` of the socket's network namespace. */
export function ifIndex(fd: number, name: string): number {
  const ifr = Buffer.alloc(40);
  ifr.write(name.slice(0, 15), 0, 'latin1');
  check('ioctl', syscallRaw('ioctl', fd, SIOCGIFINDEX, addressOf(ifr)), `SIOCGIFINDEX ${name}`);
  return ifr.readInt32LE(16);
}

/**
 * Whether every byte of a packet socket's rings (`size` bytes: the RX ring's blocks, then
 * the TX ring's) is zero, read through a mapping of stasis's own. A TPACKET_V1/V2 ring the
 * kernel never wrote a frame into, nor the task, is all zero, as a new ring is.
 */
export function packetRingsZero(fd: number, size: number): boolean {
  const PROT_READ = 1, MAP_SHARED = 1;
  const addr = syscallRaw('mmap', 0, size, PROT_READ, MAP_SHARED, fd, 0);
  if (addr < 0n) throw new SyscallError('mmap', Number(-addr), `the rings of packet socket fd ${fd} (${size} bytes)`);
  try {
    const chunk = Buffer.alloc(Math.min(size, 1 << 20));
    for (let at = 0; at < size; at += chunk.length) {
      const n = Math.min(chunk.length, size - at);
      if (vmRead(process.pid, addr + BigInt(at), chunk, 0, n) !== n) throw new SyscallError('process_vm_readv', 5, 'a packet ring mapped by stasis');
      for (let i = 0; i < n; i += 8) if (chunk.readBigUInt64LE(i) !== 0n) return false;
    }
    return true;
  } finally {
    syscallRaw('munmap', addr, size);
  }
}
