// The TCP half of the inet socket kind (inet-socket.ts): listeners, connections in every state
// repair mode can bring back, and sockets with no connection (never bound, bound, closed).
//
// Dump: the socket is taken into stasis with pidfd_getfd (the same open file as the task's) to
// read its options. A connection (a TCP socket with a peer: established, half-closed, SYN_SENT,
// or reset) needs --tcp-established (CRIU's rule; refused without it) and is locked by the
// network lock, put in repair mode, and saved into tcp-stream-<ino>.img with both queues; the
// socket stays in repair mode until the dump ends (tcp-state.ts). With --tcp-close it is
// dumped as a socket to restore closed. A listener with connections not accepted yet is
// refused, unless --skip-in-flight (those connections are lost).
//
// Restore: a listener is bound and listens; a connection is built again in repair mode, its
// FINs given back (net/tcp-repair.ts), and leaves repair mode just before the tree runs; with
// --tcp-close it is a socket closed both ways. A socket without a connection is bound where it
// was. Then the options: CRIU's tcp_opts (TCP_NODELAY, TCP_CORK, keepalive), and stasis's own
// (TCP_DEFER_ACCEPT, TCP_USER_TIMEOUT, TCP_CONGESTION, ...), each where a fresh socket differs.
import { create, isFieldSet } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { InetSkEntrySchema, type InetSkEntry } from '../image/gen/stasis/sk-inet_pb.js';
import { TcpOptsEntrySchema } from '../image/gen/stasis/tcp-stream_pb.js';
import { emptyFown } from './reg.js';
import { SkShutdown } from '../image/gen/stasis/sk-opts_pb.js';
import { readImage } from '../image/index.js';
import {
  bindInet, closeFd, fcntl, getLinger, getsockoptInt, setLinger, getsockoptString, listen, pidfdGetfd, pidfdOpen, setsockoptInt, setsockoptString,
  shutdown, socket, tcpSockets, SyscallError,
  AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IP_FREEBIND, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, SOL_TCP,
  SO_BROADCAST, SO_BUF_LOCK, SO_RCVBUF, SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF,
  TCP_CONGESTION, TCP_CORK, TCP_DEFER_ACCEPT, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_LINGER2, TCP_MAXSEG, TCP_NODELAY,
  TCP_NOTSENT_LOWAT, TCP_SYNCNT, TCP_ULP, TCP_USER_TIMEOUT,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { Conn } from '../net/network-lock.js';
import { repairOn, restoreConnection, saveConnection, TCP_CLOSE, TCP_LISTEN, REPAIRABLE } from '../net/tcp-repair.js';
import type { DumpFileCtx, FdProbe, OpenResult, RestoreFileCtx } from './kind.js';
import { setStatusFlags } from './pipe-data.js';
import { setBufSize, setGeneralOpts, setTimeouts } from './sk-opts.js';
import { formatInet, TCP_STATES, type InetProbe } from './inet-socket-probe.js';
import { dumpOpts, inetRefusal, optOf, setIfOther, SNDBUF_LOCK, RCVBUF_LOCK } from './inet-socket.js';
import { dumpStep, failure } from './fail.js';
import { describeGroup, dumpMcGroups } from './inet-mcast.js';

const O_ASYNC = 0o20000, F_GETOWN = 9;
const TCP_FASTOPEN = 23, SHUT_RDWR = 2;

function stateName(state: number): string {
  return TCP_STATES[state] ?? `state ${state}`;
}

/** The socket's connection as the network lock and repair mode see it. */
function connOf(k: { family: number; srcAddr: readonly number[]; srcPort: number; dstAddr: readonly number[]; dstPort: number }): Conn {
  return { family: k.family, src: k.srcAddr, srcPort: k.srcPort, dst: k.dstAddr, dstPort: k.dstPort };
}

/** Why the TCP socket cannot be dumped with these options, or undefined (CRIU's can_dump_inet_sk). */
function tcpRefusal(found: InetProbe, ctx: DumpFileCtx): string | undefined {
  const s = found.sock;
  const local = formatInet(found.family, s.localAddr, s.localPort), peer = formatInet(found.family, s.remoteAddr, s.remotePort);
  if (s.state === TCP_LISTEN) {
    if (s.rxQueue > 0 && !ctx.tcp.opts.skipInFlight) {
      return `is a TCP listener on ${local} with ${s.rxQueue} connection(s) not accepted yet; --skip-in-flight leaves them out (they are lost)`;
    }
    return undefined;
  }
  if (!((1 << s.state) & REPAIRABLE)) return `is a TCP socket on ${local} in state ${stateName(s.state)}, which cannot be dumped`;
  if (s.remotePort === 0) return undefined; // no connection: made again at restore
  if (!ctx.tcp.opts.established && !ctx.tcp.opts.close) {
    return `is a TCP connection from ${local} to ${peer} (${stateName(s.state)}): dumping connections needs --tcp-established (or --tcp-close to restore them closed)`;
  }
  return undefined;
}

/** The options every TCP socket keeps (CRIU's tcp_opts, and stasis's own). */
function dumpTcpOpts(fd: number, state: number, connected: boolean) {
  const ulp = getsockoptString(fd, SOL_TCP, TCP_ULP);
  if (ulp) throw new StasisError('E_UNSUPPORTED', `it has the upper layer protocol ${JSON.stringify(ulp)} (TCP_ULP: kernel TLS or MPTCP), which stasis cannot restore`);
  const int = (opt: number) => getsockoptInt(fd, SOL_TCP, opt);
  return {
    tcpOpts: create(TcpOptsEntrySchema, { cork: int(TCP_CORK) !== 0, nodelay: int(TCP_NODELAY) !== 0, keepcnt: int(TCP_KEEPCNT), keepidle: int(TCP_KEEPIDLE), keepintvl: int(TCP_KEEPINTVL) }),
    tcpNodelay: int(TCP_NODELAY) !== 0, tcpDeferAccept: int(TCP_DEFER_ACCEPT),
    tcpUserTimeout: int(TCP_USER_TIMEOUT), tcpCongestion: getsockoptString(fd, SOL_TCP, TCP_CONGESTION), tcpLinger2: int(TCP_LINGER2),
    tcpSyncnt: int(TCP_SYNCNT), tcpNotsentLowat: int(TCP_NOTSENT_LOWAT),
    // A connection's mss is its tcp-stream's; a closed one's is not the task's.
    ...(!connected && (state === TCP_LISTEN || state === TCP_CLOSE) ? { tcpMaxseg: int(TCP_MAXSEG) } : {}),
    ...(state === TCP_LISTEN ? { tcpFastopen: int(TCP_FASTOPEN) } : {}),
  };
}

export function dumpTcp(p: FdProbe, ctx: DumpFileCtx, id: number, found: InetProbe): FileEntry {
  const ino = Number(p.stat.ino);
  const what = `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const refused = inetRefusal(p.pid, found, ctx.tcp.netns?.link) ?? tcpRefusal(found, ctx);
  if (refused) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} ${refused}`);
  if (p.info.flags & O_ASYNC) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} has O_ASYNC set (signal-driven I/O), not supported yet`);
  const s = found.sock;
  const pidfd = pidfdOpen(p.pid);
  let taken = -1, kept = false;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    const owner = fcntl(taken, F_GETOWN);
    if (owner !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} has an owner for signals (F_SETOWN ${owner}), not supported yet`);
    // Listed sockets: the backlog, the accept queue and the shut sides from inet_diag.
    const diag = found.unlisted ? undefined : ctx.tcp.inNetns(() => tcpSockets(found.family, 1 << s.state)).get(ino);
    if (!found.unlisted && !diag) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: inet_diag does not know the socket`);
    if (s.state === TCP_LISTEN && diag && diag.rqueue > 0) {
      // Checked again: a connection may have come in since /proc was read (the tree is frozen, the kernel is not).
      if (!ctx.tcp.opts.skipInFlight) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} is a TCP listener on ${formatInet(found.family, s.localAddr, s.localPort)} with ${diag.rqueue} connection(s) not accepted yet; --skip-in-flight leaves them out (they are lost)`);
      }
      ctx.log?.info(`tcp: skipping ${diag.rqueue} connection(s) in flight of listener ${formatInet(found.family, s.localAddr, s.localPort)}`);
    }
    // A TCP socket can join IPv4 groups (it never receives from them); a restore would lose them.
    const groups = dumpMcGroups(taken, p.pid, found.family, SOCK_STREAM);
    if (groups.length) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} is a TCP socket in multicast group ${groups.map(describeGroup).join(', ')}, not supported`);
    // Read before repair mode, which changes SO_REUSEADDR and TCP_MAXSEG.
    const [lingerOn, lingerSecs] = getLinger(taken);
    const opts = {
      ...dumpOpts(taken, true), soBroadcast: getsockoptInt(taken, SOL_SOCKET, SO_BROADCAST) !== 0,
      ...(lingerOn ? { soLinger: lingerSecs } : {}), // CRIU's: present when on
    };
    const tcpOpts = dumpStep(what, () => dumpTcpOpts(taken, s.state, s.remotePort !== 0));
    const isk = create(InetSkEntrySchema, {
      id, ino, family: found.family, type: SOCK_STREAM, proto: IPPROTO_TCP, state: s.state,
      srcPort: s.localPort, dstPort: s.remotePort, flags: p.info.flags, backlog: s.state === TCP_LISTEN ? diag?.wqueue ?? 0 : 0,
      srcAddr: s.localAddr, dstAddr: s.remoteAddr, fown: emptyFown(), opts,
      ...(found.family === AF_INET6 ? { v6only: getsockoptInt(taken, IPPROTO_IPV6, IPV6_V6ONLY) !== 0 } : {}),
      ipOpts: { freebind: getsockoptInt(taken, IPPROTO_IP, IP_FREEBIND) !== 0 },
      ...tcpOpts,
    });
    const shut = diag ? diag.shutdown : 0;
    if (shut) isk.shutdown = shut as SkShutdown;
    if (s.remotePort !== 0 && !ctx.tcp.opts.close) {
      ctx.tcp.repair(taken, connOf(isk), opts.reuseaddr);
      kept = true;
      const saved = saveConnection(taken);
      isk.state = saved.state;
      const t = isk.tcpOpts!;
      ctx.tcp.streams.set(ino, { entry: { ...saved.entry, ...(t.nodelay ? { nodelay: true } : {}), ...(t.cork ? { cork: true } : {}) }, payload: saved.queues });
      ctx.log?.info(`tcp: ${what} ${formatInet(found.family, s.localAddr, s.localPort)} - ${formatInet(found.family, s.remoteAddr, s.remotePort)} ${stateName(saved.state)}: ${saved.entry.inqLen} bytes to read, ${saved.entry.outqLen} to send (${saved.entry.unsqLen} never sent)`);
    }
    return create(FileEntrySchema, { type: FdTypes.INETSK, id, isk });
  } catch (err) {
    throw failure('E_DUMP_FAILED', `Cannot read ${what}`, err);
  } finally {
    if (taken >= 0 && !kept) closeFd(taken);
    closeFd(pidfd);
  }
}

/** bind() where the socket was; IPv6 addresses may still be tentative: IP_FREEBIND while binding (CRIU's inet_bind). */
function bindBack(fd: number, k: InetSkEntry): void {
  const freebind = k.ipOpts?.freebind ?? false;
  if (k.family === AF_INET6 || freebind) setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 1);
  bindInet(fd, k.family, k.srcAddr, k.srcPort);
  if (!freebind) setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 0);
}

/** A stasis-only option of the entry, or undefined where the image lacks it (CRIU's images do). */
function own(k: InetSkEntry, name: 'tcpUserTimeout' | 'tcpLinger2' | 'tcpSyncnt' | 'tcpNotsentLowat' | 'tcpMaxseg' | 'tcpFastopen'): number | undefined {
  return isFieldSet(k, InetSkEntrySchema.field[name]) ? k[name] : undefined;
}

/** The TCP options of an image, where they differ from a fresh socket's. */
function restoreTcpOpts(fd: number, k: InetSkEntry): void {
  const o = k.opts!, t = k.tcpOpts;
  const set = (opt: number, v: number | undefined) => setIfOther(fd, SOL_TCP, opt, v);
  set(TCP_KEEPCNT, t?.keepcnt ?? optOf(o, 'tcpKeepcnt'));
  set(TCP_KEEPIDLE, t?.keepidle ?? optOf(o, 'tcpKeepidle'));
  set(TCP_KEEPINTVL, t?.keepintvl ?? optOf(o, 'tcpKeepintvl'));
  if (t?.nodelay ?? k.tcpNodelay) setsockoptInt(fd, SOL_TCP, TCP_NODELAY, 1);
  if (t?.cork) setsockoptInt(fd, SOL_TCP, TCP_CORK, 1);
  if (k.tcpDeferAccept) setsockoptInt(fd, SOL_TCP, TCP_DEFER_ACCEPT, k.tcpDeferAccept);
  set(TCP_USER_TIMEOUT, own(k, 'tcpUserTimeout'));
  set(TCP_LINGER2, own(k, 'tcpLinger2'));
  set(TCP_SYNCNT, own(k, 'tcpSyncnt'));
  set(TCP_NOTSENT_LOWAT, own(k, 'tcpNotsentLowat'));
  set(TCP_MAXSEG, own(k, 'tcpMaxseg'));
  set(TCP_FASTOPEN, own(k, 'tcpFastopen'));
  if (k.tcpCongestion && getsockoptString(fd, SOL_TCP, TCP_CONGESTION) !== k.tcpCongestion) setsockoptString(fd, SOL_TCP, TCP_CONGESTION, k.tcpCongestion);
}

/** A connection built again in repair mode from its tcp-stream image; it leaves repair mode once the tree is restored. */
function repairConnection(fd: number, e: FileEntry, k: InetSkEntry, ctx: RestoreFileCtx): void {
  const o = k.opts!;
  const [stream] = readImage(ctx.imagesDir, 'tcp-stream', k.ino);
  if (!stream) throw new StasisError('E_CORRUPT', `tcp-stream-${k.ino.toString(16)}.img of socket ${e.id} is empty`);
  repairOn(fd);
  // The queues must fit: a queue may hold more than the buffer size the dump saw (it was
  // filled while the buffer was larger), and skbs cost more than their bytes.
  const room = (size: number, queued: number) => Math.max(size, 2 * queued + (64 << 10)) >> 1;
  setBufSize(fd, SO_SNDBUF, room(o.soSndbuf, stream.entry.outqLen));
  setBufSize(fd, SO_RCVBUF, room(o.soRcvbuf, stream.entry.inqLen));
  const freebind = k.ipOpts?.freebind ?? false;
  if (k.family === AF_INET6 || freebind) setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 1); // as bindBack()
  // In the socket's namespace: the segments handed to it as if from its peer are sent there.
  ctx.tcp.inNetns(() => restoreConnection(fd, connOf(k), k.state, stream.entry, Buffer.from(stream.payload)));
  if (!freebind) setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 0);
  // Then the sizes the dump saw, and which of them the task had set (SO_BUF_LOCK, Linux 5.14).
  setBufSize(fd, SO_SNDBUF, o.soSndbuf >> 1);
  setBufSize(fd, SO_RCVBUF, o.soRcvbuf >> 1);
  try {
    setsockoptInt(fd, SOL_SOCKET, SO_BUF_LOCK, optOf(o, 'soBufLock') ?? SNDBUF_LOCK | RCVBUF_LOCK);
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'ENOPROTOOPT')) throw err; // before Linux 5.14: both stay locked
  }
  // Images of CRIU before tcp_opts keep cork and nodelay in the stream.
  k.tcpOpts ??= create(TcpOptsEntrySchema);
  if (stream.entry.cork) k.tcpOpts.cork = true;
  if (stream.entry.nodelay) k.tcpOpts.nodelay = true;
  ctx.tcp.add(fd, connOf(k), o.reuseaddr ?? false);
}

/**
 * Whether another socket of the image shares this one's port with SO_REUSEPORT: then this one
 * binds with it too, as it did (a socket may have turned it off once bound), and sets it back after.
 */
function sharesReuseport(k: InetSkEntry, ctx: RestoreFileCtx): boolean {
  for (const f of ctx.files.values()) {
    const o = f.isk;
    if (o && o !== k && o.proto === IPPROTO_TCP && o.srcPort === k.srcPort && o.family === k.family && o.opts?.soReuseport) return true;
  }
  return false;
}

function makeTcpSocket(e: FileEntry, k: InetSkEntry, ctx: RestoreFileCtx): number {
  const o = k.opts!;
  const connection = k.dstPort !== 0;
  const fd = ctx.tcp.inNetns(() => socket(k.family, SOCK_STREAM | SOCK_CLOEXEC | 0o4000 /* SOCK_NONBLOCK until the end */, IPPROTO_TCP));
  try {
    if (k.family === AF_INET6) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, k.v6only ? 1 : 0);
    const reuseport = o.soReuseport ?? false;
    if (reuseport || (k.srcPort && sharesReuseport(k, ctx))) setsockoptInt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    // The dumped tree's connections, killed with it, may hold the port (TIME_WAIT, or locked).
    setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    let lock = optOf(o, 'soBufLock') ?? SNDBUF_LOCK | RCVBUF_LOCK;
    if (connection && !ctx.tcp.opts.close) {
      repairConnection(fd, e, k, ctx);
      lock = 0; // set already
    } else {
      // A connection restored closed (--tcp-close) is not bound: a fresh socket, shut both ways,
      // so that reads end and writes fail.
      if (k.srcPort && !connection) bindBack(fd, k);
      if (k.state === TCP_LISTEN) listen(fd, k.backlog);
      setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, o.reuseaddr ? 1 : 0);
      const how = connection ? SHUT_RDWR : k.shutdown ? k.shutdown - 1 : -1;
      if (how >= 0) {
        try {
          shutdown(fd, how);
        } catch (err) {
          if (!(err instanceof SyscallError && err.code === 'ENOTCONN')) throw err; // an unconnected socket: shut all the same
        }
      }
    }
    if (!reuseport) setIfOther(fd, SOL_SOCKET, SO_REUSEPORT, 0);
    setIfOther(fd, SOL_SOCKET, SO_BROADCAST, optOf(o, 'soBroadcast'));
    setIfOther(fd, SOL_SOCKET, 9 /* SO_KEEPALIVE */, optOf(o, 'soKeepalive'));
    restoreTcpOpts(fd, k);
    if (lock & SNDBUF_LOCK) setBufSize(fd, SO_SNDBUF, o.soSndbuf >> 1);
    if (lock & RCVBUF_LOCK) setBufSize(fd, SO_RCVBUF, o.soRcvbuf >> 1);
    setTimeouts(fd, o);
    setGeneralOpts(fd, o);
    if (optOf(o, 'soLinger') !== undefined) setLinger(fd, true, o.soLinger ?? 0);
    setStatusFlags(fd, k.flags);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return fd;
}

export function openTcp(e: FileEntry, k: InetSkEntry, ctx: RestoreFileCtx): OpenResult {
  const at = `${formatInet(k.family, k.srcAddr, k.srcPort)}${k.dstPort ? ` - ${formatInet(k.family, k.dstAddr, k.dstPort)}` : ''}`;
  const kind = k.state === TCP_LISTEN ? 'TCP listener' : k.dstPort ? `TCP connection (${stateName(k.state)})` : 'TCP socket';
  if (k.dstPort && !ctx.tcp.opts.established && !ctx.tcp.opts.close) {
    throw new StasisError('E_UNSUPPORTED', `Cannot restore ${kind} ${e.id} on ${at}: restoring connections needs --tcp-established (or --tcp-close to restore them closed)`);
  }
  try {
    return { status: 'done', fd: makeTcpSocket(e, k, ctx) };
  } catch (err) {
    throw failure('E_RESTORE_FAILED', `Cannot restore ${kind} ${e.id} on ${at}`, err);
  }
}
