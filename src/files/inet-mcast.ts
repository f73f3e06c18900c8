// Multicast memberships and sending options of a UDP, UDP-Lite or raw socket (stasis's own
// fields of InetSkEntry: CRIU keeps none, and restores a socket with no groups).
//
// Dump: the kernel lists no socket's memberships, only each device's groups
// (/proc/PID/net/igmp, igmp6: every socket's, and the kernel's own, such as 224.0.0.1 and
// ff02::1 that every device is in). Each of those is a candidate; getsockopt(MCAST_MSFILTER) on
// the socket answers, for a group it joined on that interface, with its filter mode and
// sources, and fails with EADDRNOTAVAIL for one it did not. An IPv6 UDP socket can be in IPv4
// groups too (joined at SOL_IP): both levels are asked.
//
// Restore: each group joined again on the interface of the same name (MCAST_JOIN_GROUP and
// MCAST_BLOCK_SOURCE for an exclude filter, MCAST_JOIN_SOURCE_GROUP for an include one); an
// interface missing here fails the restore, naming it.
//
// Not kept, as no getsockopt reads it: an IPv4 IP_MULTICAST_IF set by interface index alone
// (struct ip_mreqn without an address); one set by address is kept as that address.
import fs from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { InetMcGroupEntrySchema, InetMcOptsEntrySchema, type InetMcGroupEntry, type InetMcOptsEntry, type InetSkEntry } from '../image/gen/stasis/sk-inet_pb.js';
import { parseIgmp, parseIgmp6, type DeviceGroup } from '../proc/index.js';
import {
  getsockoptBytes, getsockoptInOut, getsockoptInt, ifIndex, ifName, setsockoptBytes, setsockoptInt, SyscallError,
  AF_INET, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IP_MULTICAST_ALL, IP_MULTICAST_IF, IP_MULTICAST_LOOP, IP_MULTICAST_TTL,
  IPV6_MULTICAST_ALL, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_IF, IPV6_MULTICAST_LOOP, MCAST_BLOCK_SOURCE, MCAST_EXCLUDE,
  MCAST_INCLUDE, MCAST_JOIN_GROUP, MCAST_JOIN_SOURCE_GROUP, MCAST_MSFILTER, SOCK_RAW, SOCK_STREAM,
} from '../sys/index.js';
import { StasisError } from '../errors.js';

// struct group_filter, group_req, group_source_req (x86-64): an interface index, then
// sockaddr_storage slots of 128 bytes from offset 8.
const SS = 128, GF_FMODE = 136, GF_NUMSRC = 140, GF_SLIST = 144, GR_SIZE = 8 + SS, GSR_SIZE = 8 + 2 * SS;

/** A sockaddr_in or sockaddr_in6 (port 0) of address `words` at `off` of `b`. */
function putAddr(b: Buffer, off: number, family: number, words: readonly number[]): void {
  b.writeUInt16LE(family, off);
  const at = off + (family === AF_INET ? 4 : 8);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, at + 4 * i));
}

function getAddr(b: Buffer, off: number, family: number): number[] {
  const at = off + (family === AF_INET ? 4 : 8);
  return Array.from({ length: family === AF_INET ? 1 : 4 }, (_, i) => b.readUInt32LE(at + 4 * i));
}

const notMember = (err: unknown) => err instanceof SyscallError && (err.code === 'EADDRNOTAVAIL' || err.code === 'ENODEV');

/** The socket's filter for `group` on `ifindex` (MCAST_MSFILTER), or undefined when it did not join it there. */
function probeGroup(fd: number, family: number, ifindex: number, group: readonly number[]): { fmode: number; sources: number[] } | undefined {
  const level = family === AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
  for (let room = 16; ; ) {
    const b = Buffer.alloc(GF_SLIST + SS * room);
    b.writeUInt32LE(ifindex, 0);
    putAddr(b, 8, family, group);
    b.writeUInt32LE(room, GF_NUMSRC);
    try {
      getsockoptInOut(fd, level, MCAST_MSFILTER, b);
    } catch (err) {
      if (notMember(err)) return undefined;
      throw err;
    }
    const n = b.readUInt32LE(GF_NUMSRC);
    // The kernel gives the filter's whole count, and as many sources as there was room for.
    if (n > room) {
      room = n;
      continue;
    }
    const sources = Array.from({ length: n }, (_, i) => getAddr(b, GF_SLIST + SS * i, family)).flat();
    return { fmode: b.readUInt32LE(GF_FMODE), sources };
  }
}

function deviceGroups(pid: number, table: 'igmp' | 'igmp6'): DeviceGroup[] {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []; // a kernel without IPv4 or IPv6 multicast
    throw err;
  }
  return table === 'igmp' ? parseIgmp(text) : parseIgmp6(text);
}

// 224.0.0.1 in network order: every device's own join (users 1); more users are sockets'.
const ALL_HOSTS = 0x010000e0;

/**
 * The groups socket `fd` (taken from `pid`) is in, with their filters. A TCP socket can join
 * IPv4 groups only (IPv6 refuses it with EPROTO), an IPv6 raw socket IPv6 ones only.
 */
export function dumpMcGroups(fd: number, pid: number, family: number, type: number): InetMcGroupEntry[] {
  const levels = family === AF_INET || type === SOCK_STREAM ? [AF_INET] : type === SOCK_RAW ? [AF_INET6] : [AF_INET6, AF_INET];
  const out: InetMcGroupEntry[] = [];
  for (const f of levels) {
    const seen = new Set<string>();
    for (const c of deviceGroups(pid, f === AF_INET ? 'igmp' : 'igmp6')) {
      if (f === AF_INET && c.group[0] === ALL_HOSTS && c.users <= 1) continue;
      const key = `${c.ifindex}/${c.group.join(',')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const m = probeGroup(fd, f, c.ifindex, c.group);
      if (m) out.push(create(InetMcGroupEntrySchema, { family: f, group: c.group, ifname: c.ifname, fmode: m.fmode, sources: m.sources }));
    }
  }
  return out;
}

const MC_OPTS = ['ttl', 'loop', 'all', 'ifAddr', 'hops6', 'loop6', 'all6', 'ifname6'] as const;

/** Whether the image holds option `name` (proto2 optional fields read as their default when absent). */
const has = (o: InetMcOptsEntry, name: (typeof MC_OPTS)[number]) => isFieldSet(o, InetMcOptsEntrySchema.field[name]);

/** The multicast sending options that differ from a new socket's, or undefined when none does. */
export function dumpMcOpts(fd: number, family: number, type: number): InetMcOptsEntry | undefined {
  const o = create(InetMcOptsEntrySchema);
  // An IPv6 raw socket has no SOL_IP options; every other inet socket has them.
  if (family === AF_INET || type !== SOCK_RAW) {
    const int = (opt: number) => getsockoptInt(fd, IPPROTO_IP, opt);
    const ttl = int(IP_MULTICAST_TTL), loop = int(IP_MULTICAST_LOOP) !== 0, all = int(IP_MULTICAST_ALL) !== 0;
    const ifAddr = getsockoptBytes(fd, IPPROTO_IP, IP_MULTICAST_IF, 4).readUInt32LE(0);
    if (ttl !== 1) o.ttl = ttl;
    if (!loop) o.loop = false;
    if (!all) o.all = false;
    if (ifAddr) o.ifAddr = ifAddr;
  }
  if (family === AF_INET6) {
    const int = (opt: number) => getsockoptInt(fd, IPPROTO_IPV6, opt);
    const hops = int(IPV6_MULTICAST_HOPS), loop = int(IPV6_MULTICAST_LOOP) !== 0, all = int(IPV6_MULTICAST_ALL) !== 0;
    const ifindex = int(IPV6_MULTICAST_IF);
    if (hops !== 1) o.hops6 = hops;
    if (!loop) o.loop6 = false;
    if (!all) o.all6 = false;
    if (ifindex) o.ifname6 = ifName(fd, ifindex);
  }
  return MC_OPTS.some((name) => has(o, name)) ? o : undefined;
}

/** The index of interface `name` here, or a restore error naming it. */
function indexOf(fd: number, name: string, what: string): number {
  try {
    return ifIndex(fd, name);
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'ENODEV') {
      throw new StasisError('E_RESTORE_FAILED', `${what} was on interface ${name}, which this network namespace does not have`, { cause: err });
    }
    throw err;
  }
}

/** The image's multicast options and memberships, on socket `fd` made at restore. */
export function setMcast(fd: number, k: InetSkEntry): void {
  const o = k.mcOpts;
  if (o) {
    const flag = (v: boolean) => (v ? 1 : 0);
    if (has(o, 'ttl')) setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_TTL, o.ttl);
    if (has(o, 'loop')) setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, flag(o.loop));
    if (has(o, 'all')) setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_ALL, flag(o.all));
    if (has(o, 'ifAddr')) {
      const a = Buffer.alloc(4);
      a.writeUInt32LE(o.ifAddr >>> 0);
      try {
        setsockoptBytes(fd, IPPROTO_IP, IP_MULTICAST_IF, a);
      } catch (err) {
        if (!(err instanceof SyscallError && err.code === 'EADDRNOTAVAIL')) throw err;
        throw new StasisError('E_RESTORE_FAILED', `IP_MULTICAST_IF was address ${fmt(AF_INET, [o.ifAddr])}, which no interface of this network namespace has`, { cause: err });
      }
    }
    if (has(o, 'hops6')) setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, o.hops6);
    if (has(o, 'loop6')) setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, flag(o.loop6));
    if (has(o, 'all6')) setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, flag(o.all6));
    if (has(o, 'ifname6')) setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, indexOf(fd, o.ifname6, 'IPV6_MULTICAST_IF'));
  }
  for (const g of k.mcGroups) joinGroup(fd, g);
}

function joinGroup(fd: number, g: InetMcGroupEntry): void {
  const f = g.family, words = f === AF_INET ? 1 : 4;
  if ((f !== AF_INET && f !== AF_INET6) || g.group.length !== words || g.sources.length % words !== 0) {
    throw new StasisError('E_CORRUPT', `A multicast group of the image has family ${f}, ${g.group.length} address words and ${g.sources.length} source words`);
  }
  const level = f === AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
  const ifindex = indexOf(fd, g.ifname, `Multicast group ${fmt(f, g.group)}`);
  const sources = Array.from({ length: g.sources.length / words }, (_, i) => g.sources.slice(words * i, words * (i + 1)));
  const req = (source?: number[]) => {
    const b = Buffer.alloc(source ? GSR_SIZE : GR_SIZE);
    b.writeUInt32LE(ifindex, 0);
    putAddr(b, 8, f, g.group);
    if (source) putAddr(b, 8 + SS, f, source);
    return b;
  };
  if (g.fmode === MCAST_INCLUDE) {
    // An include filter with no source is no membership: the kernel leaves the group then.
    if (!sources.length) throw new StasisError('E_CORRUPT', `Multicast group ${fmt(f, g.group)} of the image includes no source`);
    for (const s of sources) setsockoptBytes(fd, level, MCAST_JOIN_SOURCE_GROUP, req(s));
  } else if (g.fmode === MCAST_EXCLUDE) {
    setsockoptBytes(fd, level, MCAST_JOIN_GROUP, req());
    for (const s of sources) setsockoptBytes(fd, level, MCAST_BLOCK_SOURCE, req(s));
  } else {
    throw new StasisError('E_CORRUPT', `Multicast group ${fmt(f, g.group)} of the image has filter mode ${g.fmode}`);
  }
}

/** 239.1.1.1 on mc0 */
export function describeGroup(g: InetMcGroupEntry): string {
  return `${fmt(g.family, g.group)} on ${g.ifname}`;
}

function fmt(family: number, words: readonly number[]): string {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  if (family === AF_INET) return [...b].join('.');
  return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
}
