// The connection tracking table of this thread's network namespace through ctnetlink
// (NETLINK_NETFILTER, net/netfilter/nf_conntrack_netlink.c; what `conntrack -L` and conntrackd
// read and write): a dump of every entry with the attributes stasis keeps, a dump of the
// expectations, and the creation of an entry (conntrackd's way of handing a connection over:
// the kernel takes up window tracking again from the next packet, tcp_in_window()).
import { addressOf, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, socket } from './sockets.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1, NFNL_SUBSYS_CTNETLINK_EXP = 2;
const IPCTNL_MSG_CT_NEW = 0, IPCTNL_MSG_CT_GET = 1, IPCTNL_MSG_EXP_GET = 1;
const NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400, NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2, NLMSG_DONE = 3, NLA_F_NESTED = 0x8000;

// enum ctattr_type, ctattr_tuple, ctattr_ip, ctattr_l4proto, ctattr_protoinfo(_tcp).
export const CTA = {
  TUPLE_ORIG: 1, TUPLE_REPLY: 2, STATUS: 3, PROTOINFO: 4, HELP: 5, NAT_SRC: 6, TIMEOUT: 7, MARK: 8, COUNTERS_ORIG: 9,
  COUNTERS_REPLY: 10, USE: 11, ID: 12, NAT_DST: 13, TUPLE_MASTER: 14, SEQ_ADJ_ORIG: 15, SEQ_ADJ_REPLY: 16, SECMARK: 17,
  ZONE: 18, SECCTX: 19, TIMESTAMP: 20, MARK_MASK: 21, LABELS: 22, LABELS_MASK: 23, SYNPROXY: 24,
} as const;
const CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2, CTA_TUPLE_ZONE = 3;
const CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3;
const CTA_PROTOINFO_TCP = 1;
const TCP_STATE = 1, TCP_WSCALE_ORIGINAL = 2, TCP_WSCALE_REPLY = 3, TCP_FLAGS_ORIGINAL = 4, TCP_FLAGS_REPLY = 5;

/** One direction of an entry: addresses as hex of their bytes (4 or 16), ports in host order. */
export interface CtTuple {
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
}

/** An entry as ctnetlink reports it; `attrs` names every top-level attribute it came with. */
export interface CtEntry {
  family: number;
  orig: CtTuple;
  reply: CtTuple;
  status: number;
  /** Seconds left. */
  timeout: number;
  mark: number;
  zone: number;
  tcp?: { state: number; wscaleOrig: number; wscaleReply: number; flagsOrig: number; flagsReply: number };
  attrs: number[];
  /** The netlink message the kernel sent (CRIU's netns-ct-<id>.img holds them end to end). */
  msg: Buffer;
}

type Attrs = Map<number, Buffer>;

function parseAttrs(b: Buffer): Attrs {
  const out: Attrs = new Map();
  for (let at = 0; at + 4 <= b.length;) {
    const len = b.readUInt16LE(at), type = b.readUInt16LE(at + 2) & 0x3fff;
    if (len < 4 || at + len > b.length) break;
    out.set(type, b.subarray(at + 4, at + len));
    at += (len + 3) & ~3;
  }
  return out;
}

function attr(type: number, value: Buffer, nested = false): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type | (nested ? NLA_F_NESTED : 0), 2);
  value.copy(b, 4);
  return b;
}
const nest = (type: number, ...parts: Buffer[]) => attr(type, Buffer.concat(parts), true);
const u8 = (v: number) => Buffer.from([v & 0xff]);
const be16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };

function parseTuple(b: Buffer | undefined): CtTuple {
  const t = parseAttrs(b ?? Buffer.alloc(0));
  const ip = parseAttrs(t.get(CTA_TUPLE_IP) ?? Buffer.alloc(0)), pr = parseAttrs(t.get(CTA_TUPLE_PROTO) ?? Buffer.alloc(0));
  const hex = (a?: Buffer) => (a ? a.toString('hex') : '');
  return {
    src: hex(ip.get(CTA_IP_V4_SRC) ?? ip.get(CTA_IP_V6_SRC)), dst: hex(ip.get(CTA_IP_V4_DST) ?? ip.get(CTA_IP_V6_DST)),
    proto: pr.get(CTA_PROTO_NUM)?.readUInt8(0) ?? 0, sport: pr.get(CTA_PROTO_SRC_PORT)?.readUInt16BE(0) ?? 0, dport: pr.get(CTA_PROTO_DST_PORT)?.readUInt16BE(0) ?? 0,
  };
}

function tupleAttr(type: number, t: CtTuple): Buffer {
  const v6 = t.src.length === 32;
  return nest(type,
    nest(CTA_TUPLE_IP, attr(v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, Buffer.from(t.src, 'hex')), attr(v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, Buffer.from(t.dst, 'hex'))),
    nest(CTA_TUPLE_PROTO, attr(CTA_PROTO_NUM, u8(t.proto)), attr(CTA_PROTO_SRC_PORT, be16(t.sport)), attr(CTA_PROTO_DST_PORT, be16(t.dport))));
}

function parseEntry(family: number, a: Attrs, msg: Buffer): CtEntry {
  const e: CtEntry = {
    msg,
    family, orig: parseTuple(a.get(CTA.TUPLE_ORIG)), reply: parseTuple(a.get(CTA.TUPLE_REPLY)),
    status: a.get(CTA.STATUS)?.readUInt32BE(0) ?? 0, timeout: a.get(CTA.TIMEOUT)?.readUInt32BE(0) ?? 0,
    mark: a.get(CTA.MARK)?.readUInt32BE(0) ?? 0, zone: a.get(CTA.ZONE)?.readUInt16BE(0) ?? 0, attrs: [...a.keys()].sort((x, y) => x - y),
  };
  // A zone given in a tuple is a zone too.
  const tz = parseAttrs(a.get(CTA.TUPLE_ORIG) ?? Buffer.alloc(0)).get(CTA_TUPLE_ZONE);
  if (tz) e.zone ||= tz.readUInt16BE(0);
  const tcp = parseAttrs(parseAttrs(a.get(CTA.PROTOINFO) ?? Buffer.alloc(0)).get(CTA_PROTOINFO_TCP) ?? Buffer.alloc(0));
  if (tcp.size) {
    e.tcp = {
      state: tcp.get(TCP_STATE)?.readUInt8(0) ?? 0, wscaleOrig: tcp.get(TCP_WSCALE_ORIGINAL)?.readUInt8(0) ?? 0,
      wscaleReply: tcp.get(TCP_WSCALE_REPLY)?.readUInt8(0) ?? 0, flagsOrig: tcp.get(TCP_FLAGS_ORIGINAL)?.readUInt8(0) ?? 0,
      flagsReply: tcp.get(TCP_FLAGS_REPLY)?.readUInt8(0) ?? 0,
    };
  }
  return e;
}

/** Sends one ctnetlink request and hands each reply message (after nfgenmsg, its family) to `onMsg`; returns at DONE or the ACK. */
function request(type: number, flags: number, family: number, body: Buffer, what: string, onMsg: (family: number, a: Attrs, msg: Buffer) => void): void {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  try {
    const req = Buffer.alloc(20 + body.length);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(type, 4);
    req.writeUInt16LE(NLM_F_REQUEST | flags, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(family, 16); // struct nfgenmsg: family, version 0, res_id 0
    body.copy(req, 20);
    const w = syscallRaw('write', fd, addressOf(req), req.length);
    if (w < 0n) throw new SyscallError('write', Number(-w), what);
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const r = syscallRaw('read', fd, addressOf(buf), buf.length);
      if (r < 0n) throw new SyscallError('read', Number(-r), what);
      const n = Number(r);
      for (let at = 0; at + 16 <= n;) {
        const len = buf.readUInt32LE(at), t = buf.readUInt16LE(at + 4);
        if (len < 16 || at + len > n) throw new SyscallError('read', 5, `a ctnetlink message of ${len} bytes`);
        if (t === NLMSG_DONE) return;
        if (t === NLMSG_ERROR) {
          const err = -buf.readInt32LE(at + 16);
          if (err) throw new SyscallError('ctnetlink', err, what);
          return; // the ACK
        }
        if (len >= 20) onMsg(buf.readUInt8(at + 16), parseAttrs(buf.subarray(at + 20, at + len)), Buffer.from(buf.subarray(at, at + len)));
        at += (len + 3) & ~3;
      }
    }
  } finally {
    syscallRaw('close', fd);
  }
}

/** Every entry of this thread's network namespace's conntrack table. */
export function conntrackEntries(): CtEntry[] {
  const out: CtEntry[] = [];
  request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_DUMP, 0, Buffer.alloc(0), 'conntrack dump', (f, a, m) => out.push(parseEntry(f, a, m)));
  return out;
}

/**
 * The entries of netlink messages laid end to end, as a dump sent them (CRIU's
 * netns-ct-<id>.img); throws on a truncated or foreign message.
 */
export function parseConntrackMessages(b: Buffer): CtEntry[] {
  const out: CtEntry[] = [];
  for (let at = 0; at < b.length;) {
    if (at + 20 > b.length) throw new SyscallError('read', 5, `a truncated conntrack message at byte ${at}`);
    const len = b.readUInt32LE(at), type = b.readUInt16LE(at + 4);
    if (len < 20 || at + len > b.length) throw new SyscallError('read', 5, `a conntrack message of ${len} bytes at byte ${at}`);
    if (type !== ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW)) throw new SyscallError('read', 5, `a netlink message of type 0x${type.toString(16)} at byte ${at}`);
    const msg = Buffer.from(b.subarray(at, at + len));
    out.push(parseEntry(msg.readUInt8(16), parseAttrs(msg.subarray(20)), msg));
    at += (len + 3) & ~3;
  }
  return out;
}

/**
 * Whether netlink messages laid end to end (as a dump sent them) hold an expectation
 * (nfnetlink subsystem CTNETLINK_EXP): CRIU 4.2's netns-exp-<id>.img asks for them with the
 * conntrack subsystem's number and gets the entries again (criu/net.c dump_nf_ct), but an image
 * may hold real ones. Throws on a truncated message.
 */
export function holdsExpectations(b: Buffer): boolean {
  for (let at = 0; at < b.length;) {
    const len = at + 16 <= b.length ? b.readUInt32LE(at) : 0;
    if (len < 16 || at + len > b.length) throw new SyscallError('read', 5, `a netlink message of ${len} bytes at byte ${at}`);
    if (b.readUInt16LE(at + 4) >> 8 === NFNL_SUBSYS_CTNETLINK_EXP) return true;
    at += (len + 3) & ~3;
  }
  return false;
}

/** How many expectations this thread's namespace's conntrack table holds. */
export function conntrackExpectations(): number {
  let n = 0;
  request((NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_GET, NLM_F_DUMP, 0, Buffer.alloc(0), 'conntrack expectation dump', () => n++);
  return n;
}

/** Creates entry `e` in this thread's namespace: its tuples, status bits a user may set, timeout, mark and TCP state (flags set whole). */
export function conntrackCreate(e: CtEntry): void {
  const parts = [tupleAttr(CTA.TUPLE_ORIG, e.orig), tupleAttr(CTA.TUPLE_REPLY, e.reply), attr(CTA.STATUS, be32(e.status)), attr(CTA.TIMEOUT, be32(e.timeout))];
  if (e.mark) parts.push(attr(CTA.MARK, be32(e.mark)));
  if (e.tcp) {
    const flags = (v: number) => Buffer.from([v, 0xff]); // struct nf_ct_tcp_flags: flags, mask
    parts.push(nest(CTA.PROTOINFO, nest(CTA_PROTOINFO_TCP,
      attr(TCP_STATE, u8(e.tcp.state)), attr(TCP_WSCALE_ORIGINAL, u8(e.tcp.wscaleOrig)), attr(TCP_WSCALE_REPLY, u8(e.tcp.wscaleReply)),
      attr(TCP_FLAGS_ORIGINAL, flags(e.tcp.flagsOrig)), attr(TCP_FLAGS_REPLY, flags(e.tcp.flagsReply)))));
  }
  request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, e.family, Buffer.concat(parts), 'conntrack entry creation', () => {});
}
