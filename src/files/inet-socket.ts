// UDP, UDP-Lite and raw sockets, IPv4 and IPv6 (CRIU's InetSkEntry inside files.img), and what
// every inet socket shares; TCP sockets are in inet-tcp.ts.
//
// Dump: the task's /proc/PID/net tables give the socket's state, bound address and port and
// queues (a socket never bound is in none: read from the socket itself); the socket is taken
// into stasis with pidfd_getfd to read its type, protocol and options, inet_diag gives a UDP
// socket's shut sides. Refused, naming pid, fd and why: datagrams queued, corked UDP sockets,
// sockets of another network namespace, link-local IPv6 addresses, signal-driven I/O and owners.
//
// Restore: socket(), IPV6_V6ONLY and SO_REUSEPORT as they were, IP_FREEBIND and SO_REUSEADDR on
// while binding, then put back as they were after connect(); then the other options
// (sk-opts.ts), the IP and raw options, the multicast options and memberships (inet-mcast.ts),
// the shut sides and the status flags.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { InetSkEntrySchema, type InetSkEntry } from '../image/gen/stasis/sk-inet_pb.js';
import { SkShutdown } from '../image/gen/stasis/sk-opts_pb.js';
import {
  bindInet, closeFd, connectInet, shutdown, udpSockets, fcntl, getsockoptBytes, getsockoptInt, pidfdGetfd, pidfdOpen,
  setsockoptBytes, setsockoptInt, socket, SyscallError,
  AF_INET6, ICMP_FILTER, ICMPV6_FILTER, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IP_FREEBIND,
  IP_HDRINCL, IP_NODEFRAG, IP_PKTINFO, IP_TOS, IP_TTL, IPV6_RECVPKTINFO, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_RAW,
  SOCK_STREAM, SOL_ICMPV6, SOL_RAW, SOL_SOCKET, SO_BROADCAST, SO_KEEPALIVE, SO_PROTOCOL,
  SO_REUSEADDR, SO_REUSEPORT, SO_TYPE, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, UDP_CORK,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe, FileKind, RestoreFileCtx } from './kind.js';
import { emptyFown } from './reg.js';
import { setStatusFlags } from './pipe-data.js';
import {
  bufLock, bufsAndTimeouts, generalOpts, optOf, setGeneralOpts, setIfOther, setLockedBufSizes, setTimeouts, SNDBUF_LOCK, RCVBUF_LOCK,
} from './sk-opts.js';
import { findInetSocket, formatInet, probeUnlisted, type InetProbe } from './inet-socket-probe.js';
import { dumpTcp, openTcp } from './inet-tcp.js';
import { dumpStep, failure } from './fail.js';
import { dumpMcGroups, dumpMcOpts, setMcast } from './inet-mcast.js';

const TCP_ESTABLISHED = 1, TCP_CLOSE = 7;
const O_ASYNC = 0o20000, F_GETOWN = 9;
const inoOf = (p: FdProbe) => Number(p.stat.ino);

/** The socket's table entry, or for a socket no table lists (never bound), what the socket says. */
function probe(p: FdProbe): InetProbe | undefined {
  return findInetSocket(p.pid, inoOf(p)) ?? probeUnlisted(p.pid, p.fd, inoOf(p));
}

/**
 * Why an inet socket of any protocol cannot be restored, or undefined. A socket of the tree's
 * own network namespace (`ownNetns`, dumped with it) is dumped from within it.
 */
export function inetRefusal(pid: number, found: InetProbe, ownNetns?: string): string | undefined {
  const netns = fs.readlinkSync(`/proc/${pid}/ns/net`), ours = fs.readlinkSync('/proc/self/ns/net');
  if (netns !== ours && netns !== ownNetns) return `is in network namespace ${netns}, not stasis's (${ours}), not supported yet`;
  return linkLocal(found, formatInet(found.family, found.sock.localAddr, found.sock.localPort));
}

const KIND = { udp: 'UDP', udplite: 'UDP-Lite', raw: 'raw', tcp: 'TCP' } as const;

/** Why the UDP, UDP-Lite or raw socket cannot be restored, or undefined. */
function refusal(pid: number, found: InetProbe, ownNetns?: string): string | undefined {
  const common = inetRefusal(pid, found, ownNetns);
  if (common) return common;
  const s = found.sock;
  const what = `a ${KIND[found.proto]} socket on ${formatInet(found.family, s.localAddr, found.proto === 'raw' ? 0 : s.localPort)}`;
  if (s.state !== TCP_CLOSE && s.state !== TCP_ESTABLISHED) return `is ${what} in state ${s.state}, not supported`;
  if (s.rxQueue > 0 || s.txQueue > 0) return `is ${what} with datagrams queued (${s.rxQueue} bytes to receive, ${s.txQueue} to send), not supported yet`;
  return undefined;
}

/** fe80::/10 needs the interface it was bound on (CRIU's ifname). */
function linkLocal(found: InetProbe, local: string): string | undefined {
  const link = (a: readonly number[]) => found.family === AF_INET6 && ((a[0] ?? 0) & 0xc0ff) === 0x80fe;
  if (link(found.sock.localAddr) || link(found.sock.remoteAddr)) return `is bound or connected to a link-local address (${local}), not supported yet`;
  return undefined;
}

export function dumpOpts(fd: number, tcp: boolean) {
  return {
    ...bufsAndTimeouts(fd), ...generalOpts(fd),
    reuseaddr: getsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR) !== 0, soReuseport: getsockoptInt(fd, SOL_SOCKET, SO_REUSEPORT) !== 0,
    soKeepalive: getsockoptInt(fd, SOL_SOCKET, SO_KEEPALIVE) !== 0, soBufLock: bufLock(fd),
    ...(tcp ? {
      tcpKeepcnt: getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPCNT), tcpKeepidle: getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPIDLE),
      tcpKeepintvl: getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPINTVL),
    } : {}),
  };
}

/** IP-level options (CRIU's dump_ip_opts), and a raw socket's own. */
function dumpIpOpts(fd: number, family: number, type: number, proto: number) {
  const v4 = family !== AF_INET6;
  const int = (level: number, opt: number) => getsockoptInt(fd, level, opt);
  const raw = type === SOCK_RAW ? {
    ...(v4 ? { hdrincl: int(IPPROTO_IP, IP_HDRINCL) !== 0, nodefrag: int(IPPROTO_IP, IP_NODEFRAG) !== 0 } : {}),
    ...icmpFilter(fd, family, proto),
  } : undefined;
  return {
    freebind: int(...freebindOpt(family)) !== 0,
    pktinfo: v4 ? int(IPPROTO_IP, IP_PKTINFO) !== 0 : int(IPPROTO_IPV6, IPV6_RECVPKTINFO) !== 0,
    ...(v4 ? { tos: int(IPPROTO_IP, IP_TOS), ttl: int(IPPROTO_IP, IP_TTL) } : {}),
    ...(raw ? { raw } : {}),
  };
}

const IPPROTO_ICMP = 1, IPPROTO_ICMPV6 = 58, IPV6_FREEBIND = 78;

/** IP_FREEBIND, or IPV6_FREEBIND (Linux 4.15, the same flag) for an IPv6 socket: a raw one has no SOL_IP options. */
const freebindOpt = (family: number): [number, number] => (family === AF_INET6 ? [IPPROTO_IPV6, IPV6_FREEBIND] : [IPPROTO_IP, IP_FREEBIND]);

/** ICMP_FILTER (IPv4, one word) or ICMPV6_FILTER (eight words) of a raw ICMP socket. */
function icmpFilter(fd: number, family: number, proto: number): { icmpvFilter?: number[] } {
  const v6 = family === AF_INET6;
  if (proto !== (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)) return {};
  const b = getsockoptBytes(fd, v6 ? SOL_ICMPV6 : SOL_RAW, v6 ? ICMPV6_FILTER : ICMP_FILTER, v6 ? 32 : 4);
  return { icmpvFilter: Array.from({ length: b.length >> 2 }, (_, i) => b.readUInt32LE(4 * i)) };
}

function dumpSocket(p: FdProbe, ctx: DumpFileCtx, id: number): FileEntry {
  const ino = inoOf(p);
  const what = `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const found = probe(p);
  if (!found) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: the task's /proc/${p.pid}/net tables no longer list it`);
  if (found.proto === 'tcp') return dumpTcp(p, ctx, id, found);
  const refused = refusal(p.pid, found, ctx.tcp.netns?.link);
  if (refused) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} ${refused}`);
  if (p.info.flags & O_ASYNC) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} has O_ASYNC set (signal-driven I/O), not supported yet`);
  const pidfd = pidfdOpen(p.pid);
  let taken = -1;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    const owner = fcntl(taken, F_GETOWN);
    if (owner !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} has an owner for signals (F_SETOWN ${owner}), not supported yet`);
    const type = getsockoptInt(taken, SOL_SOCKET, SO_TYPE), proto = getsockoptInt(taken, SOL_SOCKET, SO_PROTOCOL);
    if (type !== SOCK_RAW && getsockoptInt(taken, IPPROTO_UDP, UDP_CORK) !== 0) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} is a corked ${KIND[found.proto]} socket (UDP_CORK): the datagram it is gathering cannot be read, not supported`);
    }
    const s = found.sock;
    // The shut sides (shutdown(2) of a UDP socket only marks it) from inet_diag.
    const diag = found.unlisted || type === SOCK_RAW ? undefined : ctx.tcp.inNetns(() => udpSockets(found.family, 1 << s.state, proto)).get(ino);
    if (!found.unlisted && type !== SOCK_RAW && !diag) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: inet_diag does not know the socket`);
    const opts = dumpStep(what, () => ({ ...dumpOpts(taken, false), soBroadcast: getsockoptInt(taken, SOL_SOCKET, SO_BROADCAST) !== 0 }));
    const isk = create(InetSkEntrySchema, {
      id, ino, family: found.family, type, proto, state: s.state,
      // A raw socket's table gives its protocol as its port: it has none.
      srcPort: type === SOCK_RAW ? 0 : s.localPort, dstPort: type === SOCK_RAW ? 0 : s.remotePort,
      flags: p.info.flags, backlog: 0, srcAddr: s.localAddr, dstAddr: s.remoteAddr,
      fown: emptyFown(), opts,
      ...(found.family === AF_INET6 ? { v6only: getsockoptInt(taken, IPPROTO_IPV6, IPV6_V6ONLY) !== 0 } : {}),
      ipOpts: dumpIpOpts(taken, found.family, type, proto),
      mcGroups: dumpMcGroups(taken, p.pid, found.family, type),
    });
    const mc = dumpMcOpts(taken, found.family, type);
    if (mc) isk.mcOpts = mc;
    if (diag?.shutdown) isk.shutdown = diag.shutdown as SkShutdown;
    return create(FileEntrySchema, { type: FdTypes.INETSK, id, isk });
  } catch (err) {
    throw failure('E_DUMP_FAILED', `Cannot read ${what}`, err);
  } finally {
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

export { optOf, setIfOther, SNDBUF_LOCK, RCVBUF_LOCK };

const isZero = (a: readonly number[]) => a.every((w) => w === 0);

/** IP-level and raw options of the image, each where a fresh socket differs. */
function setIpOpts(fd: number, k: InetSkEntry): void {
  const o = k.ipOpts;
  if (!o) return;
  const v4 = k.family !== AF_INET6;
  const flag = (v: boolean | undefined) => (v === undefined ? undefined : v ? 1 : 0);
  if (v4) setIfOther(fd, IPPROTO_IP, IP_PKTINFO, flag(o.pktinfo));
  else setIfOther(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, flag(o.pktinfo));
  if (v4) {
    setIfOther(fd, IPPROTO_IP, IP_TOS, o.tos);
    setIfOther(fd, IPPROTO_IP, IP_TTL, o.ttl);
  }
  const r = o.raw;
  if (!r || k.type !== SOCK_RAW) return;
  if (v4) {
    setIfOther(fd, IPPROTO_IP, IP_HDRINCL, flag(r.hdrincl));
    setIfOther(fd, IPPROTO_IP, IP_NODEFRAG, flag(r.nodefrag));
  }
  if (r.icmpvFilter.length) {
    const b = Buffer.alloc(4 * r.icmpvFilter.length);
    r.icmpvFilter.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
    const v6 = k.family === AF_INET6;
    setsockoptBytes(fd, v6 ? SOL_ICMPV6 : SOL_RAW, v6 ? ICMPV6_FILTER : ICMP_FILTER, b);
  }
}

/** A UDP, UDP-Lite or raw socket, bound and connected again where it was. */
function makeSocket(k: InetSkEntry, ctx: RestoreFileCtx): number {
  const o = k.opts!;
  const fd = ctx.tcp.inNetns(() => socket(k.family, k.type | SOCK_CLOEXEC, k.proto));
  try {
    // What decides which address and port the socket can take: before bind().
    // (A raw socket has its protocol as its port from the start: IPV6_V6ONLY cannot change then.)
    if (k.family === AF_INET6) setIfOther(fd, IPPROTO_IPV6, IPV6_V6ONLY, k.v6only ? 1 : 0);
    if (o.soReuseport) setsockoptInt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    // The dumped tree's connections, killed with it, may hold the port in TIME_WAIT.
    setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (k.srcPort || !isZero(k.srcAddr)) {
      // An address that is not (or not yet: IPv6's tentative ones) this machine's binds with
      // IP_FREEBIND; the socket's own value is set after (CRIU's inet_bind).
      setsockoptInt(fd, ...freebindOpt(k.family), 1);
      bindInet(fd, k.family, k.srcAddr, k.srcPort);
    }
    setsockoptInt(fd, ...freebindOpt(k.family), k.ipOpts?.freebind ? 1 : 0);
    if (k.state === TCP_ESTABLISHED) connectInet(fd, k.family, k.dstAddr, k.dstPort);
    setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, o.reuseaddr ? 1 : 0);
    setIfOther(fd, SOL_SOCKET, SO_BROADCAST, optOf(o, 'soBroadcast'));
    setIfOther(fd, SOL_SOCKET, SO_KEEPALIVE, optOf(o, 'soKeepalive'));
    setLockedBufSizes(fd, o);
    setTimeouts(fd, o);
    setGeneralOpts(fd, o);
    setIpOpts(fd, k);
    setMcast(fd, k);
    const shut = k.shutdown ?? 0;
    if (shut) {
      try {
        shutdown(fd, shut - 1); // SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2
      } catch (err) {
        if (!(err instanceof SyscallError && err.code === 'ENOTCONN')) throw err; // unconnected: marked all the same
      }
    }
    setStatusFlags(fd, k.flags);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return fd;
}

export const inetSocket = {
  name: 'inet socket',
  type: FdTypes.INETSK,
  detect: (p) => /^socket:\[\d+\]$/.test(p.link) && probe(p) !== undefined,
  dump: dumpSocket,
  open: (e, ctx) => {
    const k = e.isk;
    if (!k?.opts) throw new StasisError('E_CORRUPT', `File ${e.id} is an inet socket without its entry`);
    const at = formatInet(k.family, k.srcAddr, k.srcPort);
    if (k.proto === IPPROTO_TCP && k.type === SOCK_STREAM) return openTcp(e, k, ctx);
    const dgram = k.type === SOCK_DGRAM && (k.proto === IPPROTO_UDP || k.proto === IPPROTO_UDPLITE);
    if (!(k.state === TCP_CLOSE || k.state === TCP_ESTABLISHED) || !(dgram || k.type === SOCK_RAW)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore socket ${e.id} on ${at}: only TCP, UDP, UDP-Lite and raw sockets are supported, not state ${k.state}, type ${k.type}, protocol ${k.proto}`);
    }
    try {
      return { status: 'done', fd: makeSocket(k, ctx) };
    } catch (err) {
      const why = err instanceof SyscallError || err instanceof StasisError ? err.message : String(err);
      const kind = k.type === SOCK_RAW ? 'raw' : k.proto === IPPROTO_UDPLITE ? 'UDP-Lite' : 'UDP';
      throw new StasisError(err instanceof StasisError ? err.code : 'E_RESTORE_FAILED', `Cannot restore ${kind} socket ${e.id} on ${at}: ${why}`, { cause: err });
    }
  },
} satisfies FileKind;
