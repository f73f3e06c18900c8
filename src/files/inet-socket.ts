// TCP listeners and UDP sockets, IPv4 and IPv6 (CRIU's InetSkEntry inside files.img).
//
// Dump: the task's /proc/PID/net/tcp or tcp6 gives the socket's state, bound address and port
// and accept queue, inet_diag its backlog (which /proc does not show); the socket is taken into stasis with pidfd_getfd to read its
// options. Supported, in stasis's network namespace: a TCP socket in LISTEN with an empty
// accept queue; a bound UDP socket, connected or not, with nothing queued. Refused, naming pid,
// fd and why: TCP connections (established or on their way in or out), a listener with
// connections not accepted yet, UDP sockets with datagrams queued, UDP-Lite and raw sockets,
// sockets of another network namespace, link-local IPv6 addresses, signal-driven I/O and owners.
//
// Restore: socket(), IPV6_V6ONLY, SO_REUSEPORT and IP_FREEBIND as they were, SO_REUSEADDR on
// while binding (the killed tree's connections may have left the port in TIME_WAIT) and put
// back as it was after listen(backlog) (or connect(), for a connected UDP socket), then the other
// options and the status flags. Not kept: SO_LINGER, SO_BINDTODEVICE, SO_PRIORITY, SO_MARK,
// socket filters, multicast memberships and IP_PKTINFO-like ancillary options, and half-open
// connections (SYN_RECV: their clients retry).
import fs from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { InetSkEntrySchema, type InetSkEntry } from '../image/gen/stasis/sk-inet_pb.js';
import { SkOptsEntrySchema, type SkOptsEntry } from '../image/gen/stasis/sk-opts_pb.js';
import {
  bindInet, closeFd, connectInet, tcpSockets, fcntl, getsockoptInt, listen, pidfdGetfd, pidfdOpen, setsockoptInt,
  socket, SyscallError,
  AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, IP_FREEBIND, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM, SOL_SOCKET,
  SO_BROADCAST,
  SO_BUF_LOCK, SO_KEEPALIVE, SO_RCVBUF, SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF,
  TCP_DEFER_ACCEPT, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_NODELAY,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind } from './kind.js';
import { emptyFown } from './reg.js';
import { setStatusFlags } from './pipe-data.js';
import { bufsAndTimeouts, setBufSize, setTimeouts } from './sk-opts.js';
import { findInetSocket, formatInet, TCP_STATES, type InetProbe } from './inet-socket-probe.js';

const TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10;
const O_ASYNC = 0o20000, F_GETOWN = 9;
const SNDBUF_LOCK = 1, RCVBUF_LOCK = 2;
const inoOf = (p: FdProbe) => Number(p.stat.ino);

/** Why the socket cannot be restored, or undefined. */
function refusal(pid: number, found: InetProbe): string | undefined {
  const netns = fs.readlinkSync(`/proc/${pid}/ns/net`), ours = fs.readlinkSync('/proc/self/ns/net');
  if (netns !== ours) return `is in network namespace ${netns}, not stasis's (${ours}), not supported yet`;
  const s = found.sock;
  const local = formatInet(found.family, s.localAddr, s.localPort);
  if (found.proto === 'udp') {
    if (s.state !== TCP_CLOSE && s.state !== TCP_ESTABLISHED) return `is a UDP socket on ${local} in state ${s.state}, not supported`;
    if (s.rxQueue > 0 || s.txQueue > 0) return `is a UDP socket on ${local} with datagrams queued (${s.rxQueue} bytes to receive, ${s.txQueue} to send), not supported yet`;
    return linkLocal(found, local);
  }
  if (found.proto !== 'tcp') return `is a ${{ udplite: 'UDP-Lite', raw: 'raw' }[found.proto]} socket bound to ${local}, not supported yet`;
  if (s.state === TCP_ESTABLISHED) {
    return `is a TCP connection from ${local} to ${formatInet(found.family, s.remoteAddr, s.remotePort)}: established TCP connections are not supported yet`;
  }
  if (s.state !== TCP_LISTEN) return `is a TCP socket on ${local} in state ${TCP_STATES[s.state] ?? s.state}: only listening TCP sockets are supported yet`;
  if (s.rxQueue > 0) return `is a TCP listener on ${local} with ${s.rxQueue} connections queued but not accepted yet, not supported yet`;
  return linkLocal(found, local);
}

/** fe80::/10 needs the interface it was bound on (CRIU's ifname). */
function linkLocal(found: InetProbe, local: string): string | undefined {
  const link = (a: readonly number[]) => found.family === AF_INET6 && ((a[0] ?? 0) & 0xc0ff) === 0x80fe;
  if (link(found.sock.localAddr) || link(found.sock.remoteAddr)) return `is bound or connected to a link-local address (${local}), not supported yet`;
  return undefined;
}

/** SO_BUF_LOCK (Linux 5.14): which buffer sizes the task set itself; without it, both. */
function bufLock(fd: number): number {
  try {
    return getsockoptInt(fd, SOL_SOCKET, SO_BUF_LOCK);
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'ENOPROTOOPT') return SNDBUF_LOCK | RCVBUF_LOCK;
    throw err;
  }
}

function dumpOpts(fd: number, tcp: boolean) {
  return {
    ...bufsAndTimeouts(fd),
    reuseaddr: getsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR) !== 0, soReuseport: getsockoptInt(fd, SOL_SOCKET, SO_REUSEPORT) !== 0,
    soKeepalive: getsockoptInt(fd, SOL_SOCKET, SO_KEEPALIVE) !== 0, soBufLock: bufLock(fd),
    ...(tcp ? {
      tcpKeepcnt: getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPCNT), tcpKeepidle: getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPIDLE),
      tcpKeepintvl: getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPINTVL),
    } : {}),
  };
}

function dumpSocket(p: FdProbe, _ctx: unknown, id: number): FileEntry {
  const ino = inoOf(p);
  const what = `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const found = findInetSocket(p.pid, ino);
  if (!found) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: the task's /proc/${p.pid}/net tables no longer list it`);
  const refused = refusal(p.pid, found);
  if (refused) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what} ${refused}`);
  if (p.info.flags & O_ASYNC) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what} has O_ASYNC set (signal-driven I/O), not supported yet`);
  const pidfd = pidfdOpen(p.pid);
  let taken = -1;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    const owner = fcntl(taken, F_GETOWN);
    if (owner !== 0) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what} has an owner for signals (F_SETOWN ${owner}), not supported yet`);
    const s = found.sock, tcp = found.proto === 'tcp';
    let backlog = 0;
    if (tcp) {
      const diag = tcpSockets(found.family, 1 << TCP_LISTEN).get(ino);
      if (!diag) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: inet_diag does not know the listener`);
      // Checked again: a connection may have come in since /proc was read (the tree is frozen, the kernel is not).
      if (diag.rqueue > 0) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what} is a TCP listener on ${formatInet(found.family, s.localAddr, s.localPort)} with ${diag.rqueue} connections queued but not accepted yet, not supported yet`);
      backlog = diag.wqueue;
    }
    const isk = create(InetSkEntrySchema, {
      id, ino, family: found.family, type: tcp ? SOCK_STREAM : SOCK_DGRAM, proto: tcp ? IPPROTO_TCP : IPPROTO_UDP, state: s.state,
      srcPort: s.localPort, dstPort: s.remotePort, flags: p.info.flags, backlog, srcAddr: s.localAddr, dstAddr: s.remoteAddr,
      fown: emptyFown(), opts: { ...dumpOpts(taken, tcp), soBroadcast: getsockoptInt(taken, SOL_SOCKET, SO_BROADCAST) !== 0 },
      ...(found.family === AF_INET6 ? { v6only: getsockoptInt(taken, IPPROTO_IPV6, IPV6_V6ONLY) !== 0 } : {}),
      ipOpts: { freebind: getsockoptInt(taken, IPPROTO_IP, IP_FREEBIND) !== 0 },
      ...(tcp ? { tcpNodelay: getsockoptInt(taken, IPPROTO_TCP, TCP_NODELAY) !== 0, tcpDeferAccept: getsockoptInt(taken, IPPROTO_TCP, TCP_DEFER_ACCEPT) } : {}),
    });
    return create(FileEntrySchema, { type: FdTypes.INETSK, id, isk });
  } catch (err) {
    if (err instanceof StasisError) throw err;
    const why = err instanceof SyscallError ? err.message : String(err);
    throw new StasisError('E_DUMP_FAILED', `Cannot read ${what}: ${why}`, { cause: err });
  } finally {
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

/** Sets `opt` to `want` where a fresh socket has another value (a value set equal to the default is not told apart). */
function setIfOther(fd: number, level: number, opt: number, want: number | undefined): void {
  if (want === undefined || getsockoptInt(fd, level, opt) === want) return;
  setsockoptInt(fd, level, opt, want);
}

/** An option the image holds (proto2 optional fields read as their default when absent). */
function optOf(o: SkOptsEntry, name: keyof typeof SkOptsEntrySchema.field): number | undefined {
  if (!isFieldSet(o, SkOptsEntrySchema.field[name])) return undefined;
  return Number(o[name as keyof SkOptsEntry]);
}

/** A TCP listener, or a bound UDP socket (connected again where it was). */
function makeSocket(k: InetSkEntry): number {
  const o = k.opts!;
  const tcp = k.proto === IPPROTO_TCP;
  const fd = socket(k.family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, k.proto);
  try {
    // What decides which address and port the socket can take: before bind().
    if (k.family === AF_INET6) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, k.v6only ? 1 : 0);
    if (k.ipOpts?.freebind) setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 1);
    if (o.soReuseport) setsockoptInt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    // The dumped tree's connections, killed with it, may hold the port in TIME_WAIT.
    setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    bindInet(fd, k.family, k.srcAddr, k.srcPort);
    if (tcp) listen(fd, k.backlog);
    else if (k.state === TCP_ESTABLISHED) connectInet(fd, k.family, k.dstAddr, k.dstPort);
    setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, o.reuseaddr ? 1 : 0);
    setIfOther(fd, SOL_SOCKET, SO_BROADCAST, optOf(o, 'soBroadcast'));
    setIfOther(fd, SOL_SOCKET, SO_KEEPALIVE, optOf(o, 'soKeepalive'));
    if (tcp) {
      setIfOther(fd, IPPROTO_TCP, TCP_KEEPCNT, optOf(o, 'tcpKeepcnt'));
      setIfOther(fd, IPPROTO_TCP, TCP_KEEPIDLE, optOf(o, 'tcpKeepidle'));
      setIfOther(fd, IPPROTO_TCP, TCP_KEEPINTVL, optOf(o, 'tcpKeepintvl'));
      if (k.tcpNodelay) setsockoptInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
      if (k.tcpDeferAccept) setsockoptInt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, k.tcpDeferAccept);
    }
    // Only sizes the task set: setting one locks it, and an accepted connection would inherit
    // the lock instead of the kernel's autotuning. setsockopt doubles what it is given. An
    // image without so_buf_lock (CRIU's before it) gets both set, as CRIU does.
    const lock = optOf(o, 'soBufLock') ?? SNDBUF_LOCK | RCVBUF_LOCK;
    if (lock & SNDBUF_LOCK) setBufSize(fd, SO_SNDBUF, o.soSndbuf >> 1);
    if (lock & RCVBUF_LOCK) setBufSize(fd, SO_RCVBUF, o.soRcvbuf >> 1);
    setTimeouts(fd, o);
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
  detect: (p) => /^socket:\[\d+\]$/.test(p.link) && findInetSocket(p.pid, inoOf(p)) !== undefined,
  dump: dumpSocket,
  open: (e) => {
    const k = e.isk;
    if (!k?.opts) throw new StasisError('E_CORRUPT', `File ${e.id} is an inet socket without its entry`);
    const at = formatInet(k.family, k.srcAddr, k.srcPort);
    const listener = k.state === TCP_LISTEN && k.proto === IPPROTO_TCP && k.type === SOCK_STREAM;
    const udp = (k.state === TCP_CLOSE || k.state === TCP_ESTABLISHED) && k.proto === IPPROTO_UDP && k.type === SOCK_DGRAM;
    if (!listener && !udp) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore socket ${e.id} on ${at}: only TCP listeners and UDP sockets are supported, not state ${k.state}, type ${k.type}, protocol ${k.proto}`);
    }
    try {
      return { status: 'done', fd: makeSocket(k) };
    } catch (err) {
      const why = err instanceof SyscallError ? err.message : String(err);
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${listener ? 'TCP listener' : 'UDP socket'} ${e.id} on ${at}: ${why}`, { cause: err });
    }
  },
} satisfies FileKind;
