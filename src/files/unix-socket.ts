// Unix domain sockets (CRIU's UnixSkEntry inside files.img; queues in sk-queues.img).
//
// Dump: sock_diag gives each socket's type, state, name, peer inode and shutdown state; the
// socket is taken into stasis with pidfd_getfd to read its options and peek its queue.
// Supported: the two ends of a connection held by the tree (socketpair, or a connection
// accepted from a listener of the tree), a listener bound to a path (absolute, or relative
// to the task's cwd), a datagram socket bound to a path and the sockets connected to it, an
// end whose peer was closed, an unconnected unbound socket. Refused, naming pid, fd and why:
// peers outside the tree, abstract names, connections not accepted yet, fds, credentials or
// datagrams from bound senders in flight, signal-driven I/O and owners.
//
// Restore: each connection is made once, when its first entry opens, by socketpair() in
// stasis, or, for an accepted one, by connecting to the restored listener and accepting (so
// the accepted end is bound to the listener's path, as before; a listener of stasis's own
// stands in for one that was closed); both queues are refilled by sending from the other
// end, then options, flags and shutdown are set on both. The end for the peer's entry waits
// in the restore state until that entry opens. Not kept: the peer credentials (SO_PEERCRED
// names stasis) and an SO_PEEK_OFF the task had set (CRIU's image has no field for it).
import fs from 'node:fs';
import { join as pathJoin } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { UnixSkEntrySchema, type UnixSkEntry } from '../image/gen/stasis/sk-unix_pb.js';
import {
  accept4, bindUnix, closeFd, connectUnix, fcntl, getsockoptInt, listen, pidfdGetfd, pidfdOpen,
  setsockoptInt, shutdown, socket, socketpair, unixSockets, SyscallError,
  AF_UNIX, SHUT_RD, SHUT_WR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET,
  SO_PASSCRED, SO_PASSSEC, SO_RCVBUF, SO_SNDBUF,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind, RestoreFileCtx } from './kind.js';
import { emptyFown } from './reg.js';
import { setStatusFlags } from './pipe-data.js';
import { checkUnixPeers, diagOf, fillQueue, peekQueue, queueItems } from './unix-socket-data.js';
import { bufsAndTimeouts, setBufSize, setTimeouts } from './sk-opts.js';

const TCP_ESTABLISHED = 1, TCP_LISTEN = 10;
const O_ASYNC = 0o20000, F_GETOWN = 9;
const TYPES = new Set([SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET]);
const inoOf = (p: FdProbe) => Number(p.stat.ino);

/** What restore cannot give back, found in sock_diag's view of the socket. */
function refusal(d: NonNullable<ReturnType<typeof diagOf>>): string | undefined {
  if (!TYPES.has(d.type)) return `is of socket type ${d.type}, not supported`;
  if (d.name.length && d.name[0] === 0) return 'is bound to an abstract name, not supported yet';
  if (d.state === TCP_LISTEN) {
    if (d.type === SOCK_DGRAM) return 'is a listening datagram socket';
    if (d.icons.length || d.rqueue) return `is listening with ${Math.max(d.icons.length, d.rqueue)} connections not accepted yet, not supported yet`;
    return undefined;
  }
  if (d.name.length && d.peer === undefined && d.type !== SOCK_DGRAM) return `is bound to ${d.name.toString()} without listening, not supported yet`;
  if (d.peer === 0 && d.type !== SOCK_DGRAM && d.shutdown !== 3) return 'is connected to a listener that has not accepted it yet, not supported yet';
  return undefined;
}

function dumpOpts(fd: number) {
  return {
    ...bufsAndTimeouts(fd),
    soPasscred: getsockoptInt(fd, SOL_SOCKET, SO_PASSCRED) !== 0, soPasssec: getsockoptInt(fd, SOL_SOCKET, SO_PASSSEC) !== 0,
  };
}

function dumpSocket(p: FdProbe, ctx: Parameters<FileKind['dump']>[1], id: number): FileEntry {
  const ino = inoOf(p);
  const what = () => `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const d = diagOf(ctx.unix, ino);
  if (!d) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what()}: sock_diag does not know the socket`);
  const refused = refusal(d);
  if (refused) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} ${refused}`);
  if (p.info.flags & O_ASYNC) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} has O_ASYNC set (signal-driven I/O), not supported yet`);
  const pidfd = pidfdOpen(p.pid);
  let taken = -1;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    const owner = fcntl(taken, F_GETOWN);
    if (owner !== 0) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} has an owner for signals (F_SETOWN ${owner}), not supported yet`);
    let filePerms;
    const nameDir = d.name.length && d.name[0] !== 0x2f ? dirOfRelativeName(p, d) : undefined;
    // A listener, or a datagram socket bound to receive: restore binds the path again.
    if (d.name.length && d.peer === undefined) {
      const path = nameDir ? pathJoin(nameDir, d.name.toString()) : d.name.toString();
      const st = fs.lstatSync(path, { throwIfNoEntry: false });
      if (!st || !st.isSocket() || st.ino !== d.vfs?.ino) {
        throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} is bound to ${path}, whose socket file was removed or replaced, not supported yet`);
      }
      filePerms = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    }
    if (d.state !== TCP_LISTEN) {
      ctx.unix.queues.push(...queueItems(id, peekQueue(taken, d.type, what, d.rqueue, (d.shutdown & 1) !== 0)));
    }
    const usk = create(UnixSkEntrySchema, {
      id, ino, type: d.type, state: d.state, flags: p.info.flags, uflags: 0,
      backlog: d.state === TCP_LISTEN ? d.wqueue : 0, peer: d.peer ?? 0, fown: emptyFown(), opts: dumpOpts(taken),
      name: d.name, shutdown: d.shutdown & 3, ...(filePerms ? { filePerms } : {}), ...(nameDir ? { nameDir } : {}),
    });
    ctx.unix.seen.set(ino, { pid: p.pid, fd: p.fd, entry: usk });
    return create(FileEntrySchema, { type: FdTypes.UNIXSK, id, usk });
  } catch (err) {
    if (err instanceof StasisError) throw err;
    const why = err instanceof SyscallError ? err.message : String(err);
    throw new StasisError('E_DUMP_FAILED', `Cannot read ${what()}: ${why}`, { cause: err });
  } finally {
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

/**
 * The directory a relative name was bound in: the task's cwd, if the name resolves there to
 * the socket's own file (bind-time cwd is not kept by the kernel; CRIU's name_dir).
 */
function dirOfRelativeName(p: FdProbe, d: NonNullable<ReturnType<typeof diagOf>>): string {
  const cwd = fs.readlinkSync(`/proc/${p.pid}/cwd`);
  const st = fs.lstatSync(pathJoin(cwd, d.name.toString()), { throwIfNoEntry: false });
  if (!st?.isSocket() || st.ino !== d.vfs?.ino) {
    throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is bound to the relative path ${d.name.toString()}, which does not lead to it from the task's cwd ${cwd}, not supported yet`);
  }
  return cwd;
}

/** Where a path-bound socket's file is. */
const fsPath = (u: UnixSkEntry) => {
  const name = Buffer.from(u.name).toString();
  return u.nameDir ? pathJoin(u.nameDir, name) : name;
};

/** Binds or connects to `u`'s name as the task did: a relative name from its directory. */
function byName(u: UnixSkEntry, op: (name: Buffer) => void): void {
  const name = Buffer.from(u.name);
  if (!u.nameDir) return op(name);
  // Only a bind() made from that directory gives the socket its relative name back.
  const back = process.cwd();
  process.chdir(u.nameDir);
  try {
    op(name);
  } finally {
    process.chdir(back);
  }
}

/** Flags, options and shutdown state of the image, on a socket whose queue is in place. */
function setUp(fd: number, u: UnixSkEntry): void {
  setStatusFlags(fd, u.flags);
  const o = u.opts!;
  // setsockopt doubles what it is given; the image holds getsockopt's (doubled) values.
  setBufSize(fd, SO_SNDBUF, o.soSndbuf >> 1);
  setBufSize(fd, SO_RCVBUF, o.soRcvbuf >> 1);
  setTimeouts(fd, o);
  if (o.soPasscred) setsockoptInt(fd, SOL_SOCKET, SO_PASSCRED, 1);
  if (o.soPasssec) setsockoptInt(fd, SOL_SOCKET, SO_PASSSEC, 1);
  const sh = u.shutdown ?? 0;
  if (sh & 1) shutdown(fd, SHUT_RD);
  if (sh & 2) shutdown(fd, SHUT_WR);
}

/** A listener, or a datagram socket bound to receive (its queue put back through a socket connected to it). */
function makeBound(u: UnixSkEntry, ctx: RestoreFileCtx): number {
  const path = fsPath(u);
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (st && !st.isSocket()) throw new StasisError('E_RESTORE_FAILED', `Cannot bind socket ${u.id} to ${path}: it exists and is not a socket`);
  // A socket file left by the dumped listener (or an earlier restore) holds the name: only a socket file is removed.
  if (st) fs.unlinkSync(path);
  const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    byName(u, (n) => bindUnix(fd, n));
    if (u.state === TCP_LISTEN) listen(fd, u.backlog);
    if (u.filePerms) {
      fs.chmodSync(path, u.filePerms.mode);
      fs.chownSync(path, u.filePerms.uid, u.filePerms.gid);
    }
    const queue = ctx.unix.queues.get(u.id);
    if (queue?.length) {
      const sender = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
      try {
        byName(u, (n) => connectUnix(sender, n));
        fillQueue(sender, queue, u.type, `socket ${u.id} bound to ${path}`);
      } finally {
        closeFd(sender);
      }
    }
    setUp(fd, u);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  ctx.unix.listeners.set(Buffer.from(u.name).toString('hex'), fd);
  return fd;
}

/** The two ends of `u`'s connection: [u's, its peer's]; undefined while the listener it came from is not open yet. */
function makeConnection(u: UnixSkEntry, peer: UnixSkEntry, ctx: RestoreFileCtx): [number, number] | undefined {
  const accepted = u.name.length ? u : peer.name.length ? peer : undefined;
  if (accepted) {
    const key = Buffer.from(accepted.name).toString('hex');
    const hasListener = [...ctx.files.values()].some((f) => f.usk?.state === TCP_LISTEN && Buffer.from(f.usk.name).toString('hex') === key);
    if (hasListener) {
      const lfd = ctx.unix.listeners.get(key);
      if (lfd === undefined) return undefined;
      const client = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
      let acc = -1;
      try {
        byName(accepted, (n) => connectUnix(client, n));
        acc = accept4(lfd, SOCK_CLOEXEC);
      } catch (err) {
        closeFd(client);
        throw err;
      }
      return accepted === u ? [acc, client] : [client, acc];
    }
    const viaTemp = acceptThroughTemporaryListener(u, accepted);
    if (viaTemp) return viaTemp;
  }
  return socketpair(u.type | SOCK_CLOEXEC);
}

/**
 * An accepted end whose listener was closed: a listener of stasis's own, bound to the path
 * for a moment, gives it its name back. Only where no live listener holds the path (a stale
 * socket file is replaced by an equally stale one; a path that did not exist is removed
 * again); otherwise undefined, and the connection is a plain pair whose accepted end is unbound.
 */
function acceptThroughTemporaryListener(u: UnixSkEntry, accepted: UnixSkEntry): [number, number] | undefined {
  const path = fsPath(accepted);
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (st && !st.isSocket()) return undefined;
  if (st && [...unixSockets().values()].some((d) => d.state === TCP_LISTEN && d.vfs?.ino === st.ino)) return undefined;
  if (st) fs.unlinkSync(path);
  const l = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  const client = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    byName(accepted, (n) => bindUnix(l, n));
    listen(l, 1);
    byName(accepted, (n) => connectUnix(client, n));
    const acc = accept4(l, SOCK_CLOEXEC);
    return accepted === u ? [acc, client] : [client, acc];
  } catch (err) {
    closeFd(client);
    throw err;
  } finally {
    closeFd(l);
    if (!st) fs.rmSync(path, { force: true });
  }
}

function openSocket(e: FileEntry, ctx: RestoreFileCtx): ReturnType<FileKind['open']> {
  const u = e.usk!;
  const st = ctx.unix;
  if (u.name.length && u.peer === 0 && (u.state === TCP_LISTEN || u.type === SOCK_DGRAM)) return { status: 'done', fd: makeBound(u, ctx) };
  const made = st.made.get(u.ino);
  if (made !== undefined) {
    st.made.delete(u.ino);
    return { status: 'done', fd: made };
  }
  const what = `socket ${u.id} (socket:[${u.ino}])`;
  const queue = st.queues.get(u.id);
  // Unconnected and unbound: nothing can have reached its queue (a datagram socket that
  // noticed its peer's close had its queue purged by the kernel).
  if (u.peer === 0 && u.state !== TCP_ESTABLISHED) {
    const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
    setUp(fd, u);
    return { status: 'done', fd };
  }
  if (u.peer === 0) {
    // Its peer was closed: a pair whose other end sends the queue and is closed.
    const [a, b] = socketpair(u.type | SOCK_CLOEXEC);
    try {
      fillQueue(b, queue, u.type, what);
      setUp(a, u);
    } catch (err) {
      closeFd(a);
      throw err;
    } finally {
      closeFd(b);
    }
    return { status: 'done', fd: a };
  }
  if (!st.byIno) {
    st.byIno = new Map();
    for (const f of ctx.files.values()) if (f.usk) st.byIno.set(f.usk.ino, f.usk);
  }
  const peer = st.byIno.get(u.peer);
  if (!peer) throw new StasisError('E_CORRUPT', `${what} is connected to socket:[${u.peer}], which files.img does not hold`);
  if (peer.peer !== u.ino) {
    // Connected one way, to a bound datagram socket: connected again once that one is bound.
    const rfd = st.listeners.get(Buffer.from(peer.name).toString('hex'));
    if (rfd === undefined) return { status: 'retry' };
    const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
    try {
      byName(peer, (n) => connectUnix(fd, n));
      setUp(fd, u);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return { status: 'done', fd };
  }
  const ends = makeConnection(u, peer, ctx);
  if (!ends) return { status: 'retry' };
  const [a, b] = ends;
  try {
    fillQueue(b, queue, u.type, what);
    fillQueue(a, st.queues.get(peer.id), u.type, `socket ${peer.id} (socket:[${peer.ino}])`);
    setUp(a, u);
    setUp(b, peer);
  } catch (err) {
    closeFd(a);
    closeFd(b);
    throw err;
  }
  st.made.set(peer.ino, b);
  return { status: 'done', fd: a };
}

export const unixSocket = {
  name: 'Unix socket',
  type: FdTypes.UNIXSK,
  detect: (p, ctx) => /^socket:\[\d+\]$/.test(p.link) && diagOf(ctx.unix, inoOf(p)) !== undefined,
  dump: dumpSocket,
  open: (e, ctx) => {
    if (!e.usk?.opts) throw new StasisError('E_CORRUPT', `File ${e.id} is a Unix socket without its entry`);
    try {
      return openSocket(e, ctx);
    } catch (err) {
      if (err instanceof StasisError) throw err;
      const why = err instanceof SyscallError ? err.message : String(err);
      throw new StasisError('E_RESTORE_FAILED', `Cannot make socket ${e.id} (socket:[${e.usk.ino}]): ${why}`, { cause: err });
    }
  },
  finish: (ctx) => {
    for (const fd of ctx.unix.made.values()) closeFd(fd);
    ctx.unix.made.clear();
    ctx.unix.listeners.clear();
  },
} satisfies FileKind;

export { checkUnixPeers };
