// Unix domain sockets (CRIU's UnixSkEntry inside files.img; queues in sk-queues.img).
//
// Dump: sock_diag gives each socket's type, state, name, peer inode and shutdown state; the
// socket is taken into stasis with pidfd_getfd to read its options and peek its queue.
// Supported: the two ends of a connection held by the tree (socketpair, or a connection
// accepted from a listener of the tree), a listener bound to an abstract name or a path (absolute, or relative
// to the task's cwd) and the connections it has not accepted yet (the client ends, which
// sock_diag's UNIX_DIAG_ICONS names; as CRIU does, each is dumped with the listener as its
// peer, in the listener's queue order), a socket bound and never connected, a datagram socket
// bound to a path and the sockets connected to it, an end whose peer was closed, an
// unconnected unbound socket. Refused, naming pid, fd and why:
// peers outside the tree, connections not accepted yet whose client was closed or sent data
// (it waits in the end not accepted, which nothing reads without accepting), credentials or
// datagrams from bound senders in flight, fds in flight in a stream socket, signal-driven I/O
// and owners. A tree with a network namespace of its own has its sockets looked at in it
// (sock_diag answers for one namespace) and made in the new one, where its abstract names are
// bound again; one with a mount namespace of its own has its paths bound and connected to
// from its root (restore binds from there, so the name is the same string). Files in flight in a datagram or seqpacket queue (SCM_RIGHTS) are dumped as
// file objects of their own (dump-fds.ts) and named by their packet's scm entry.
//
// Restore (openSocket() here, the making in unix-socket-connect.ts): each connection is made
// once, when its first entry opens, by socketpair() in stasis, or, for an accepted one, by connecting to the restored listener and accepting (so
// the accepted end is bound to the listener's path, as before; a listener of stasis's own
// stands in for one that was closed); a connection not accepted yet by connecting its client
// end to the restored listener again, once the accepted ones are made; both queues are refilled by sending from the other
// end, then options, flags and shutdown are set on both. The end for the peer's entry waits
// in the restore state until that entry opens. A pair is made by a task holding the pid, uid
// and gid its SO_PEERCRED names (restore/socket-pairs.ts), where that pid is free, or, in a
// network namespace of the tree's own, by that task of the tree once it is made. Not kept:
// the peer credentials of an accepted connection, or one not accepted yet (SO_PEERCRED names
// stasis) and an SO_PEEK_OFF the task had set (CRIU's image has no field for it).
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { UnixSkEntrySchema, type UnixSkEntry } from '../image/gen/stasis/sk-unix_pb.js';
import { closeFd, peerCred, fcntl, inNamespace, pidfdGetfd, pidfdOpen, shutdown, socket, socketpair, AF_UNIX, CLONE_NEWNET, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind, RestoreFileCtx } from './kind.js';
import { emptyFown } from './reg.js';
import { checkUnixPeers, diagOf, fillQueue, iconOf, imageName, peekQueue, queueItems, USK_EXTERN, type UnixSkSink } from './unix-socket-data.js';
import { boundFile } from './unix-socket-path.js';
import { connectOutside, connectPending, connectTo, makeBound, makeConnection, pairOf, passed, passedOpen, setUp } from './unix-socket-connect.js';
import { bufsAndTimeouts, generalOpts } from './sk-opts.js';
import { failure } from './fail.js';

const TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10;
const O_ASYNC = 0o20000, F_GETOWN = 9;
const TYPES = new Set([SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET]);
const inoOf = (p: FdProbe) => Number(p.stat.ino);

/** What restore cannot give back, found in sock_diag's view of the socket. */
function refusal(d: NonNullable<ReturnType<typeof diagOf>>, sink: UnixSkSink): string | undefined {
  if (!TYPES.has(d.type)) return `is of socket type ${d.type}, not supported`;
  if (d.state === TCP_LISTEN) {
    if (d.type === SOCK_DGRAM) return 'is a listening datagram socket';
    // A connection not accepted yet comes back by connecting its client end again.
    if (d.icons.includes(0)) return 'is listening with a connection not accepted yet whose client end was closed, not supported yet';
    for (const c of d.icons) {
      const cd = sink.diag?.get(c);
      // What the client sent waits in the end the listener has not accepted: no syscall reads it without accepting.
      if (cd?.wqueue) return `is listening with a connection not accepted yet from socket:[${c}], whose client sent it data (${cd.wqueue} bytes of its send buffer in use), which cannot be read without accepting it, not supported yet`;
    }
    if (d.icons.length !== d.rqueue) return `is listening with ${d.rqueue} connections not accepted yet, of which sock_diag names ${d.icons.length}`;
    return undefined;
  }
  const pending = iconOf(sink, d.ino);
  if (pending && d.name.length) return `is bound to ${d.name.toString()} and connected to a listener that has not accepted it yet, not supported yet`;
  if (pending) return undefined;
  if (d.name.length && d.peer === undefined && d.type !== SOCK_DGRAM && d.state !== TCP_CLOSE) return `is bound to ${d.name.toString()} in state ${d.state}, not supported yet`;
  if (d.peer === 0 && d.type !== SOCK_DGRAM && d.shutdown !== 3) return 'is connected to a listener that has not accepted it yet, not supported yet';
  return undefined;
}

function dumpOpts(fd: number) {
  return {
    ...bufsAndTimeouts(fd), ...generalOpts(fd),
  };
}

function dumpSocket(p: FdProbe, ctx: Parameters<FileKind['dump']>[1], id: number): FileEntry {
  const ino = inoOf(p);
  const what = () => `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const d = diagOf(ctx.unix, ino, (read) => ctx.tcp.inNetns(read));
  if (!d) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what()}: sock_diag does not know the socket`);
  const refused = refusal(d, ctx.unix);
  if (refused) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} ${refused}`);
  if (p.info.flags & O_ASYNC) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} has O_ASYNC set (signal-driven I/O), not supported yet`);
  const pidfd = pidfdOpen(p.pid);
  let taken = -1;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    const owner = fcntl(taken, F_GETOWN);
    if (owner !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} has an owner for signals (F_SETOWN ${owner}), not supported yet`);
    const abstract = d.name.length > 0 && d.name[0] === 0;
    // Its name is bound again in the mount namespace of its file's mount: a nested one's is seen (and bound) from a task in it.
    const nested = ctx.ghosts?.mntRoots;
    const file = d.name.length && !abstract ? boundFile(taken, d.name.toString(), what, (mnt) => nested?.get(mnt) ?? ctx.ghosts?.mntRoot ?? '') : undefined;
    const mntId = file && nested?.has(file.mntId) ? file.mntId : undefined;
    const nameDir = file?.nameDir;
    // A listener, a socket bound and never connected, or a datagram socket bound to receive:
    // restore binds the path again (an abstract name has no file), and removes it again if
    // the socket's file was removed.
    // (A datagram socket's name is its own: none takes one from its peer.)
    const binds = file && (d.peer === undefined || d.type === SOCK_DGRAM);
    if (binds && !file.deleted) ctx.unix.boundFiles.add(file.key);
    // A stream or seqpacket socket never connected has no queue (recvmsg refuses it: EINVAL, ENOTCONN).
    const neverConnected = d.type !== SOCK_DGRAM && d.state !== TCP_ESTABLISHED;
    if (d.state !== TCP_LISTEN && !neverConnected) {
      const rights = new Map<number, number[]>();
      const onRights = ctx.dumpInFlight && ((i: number, fds: number[]) => rights.set(i, fds.map((f) => ctx.dumpInFlight!(f))));
      // A datagram pair's ends are both bound again before their queues are sent from each other.
      const pd = d.peer !== undefined && d.peer !== d.ino ? ctx.unix.diag?.get(d.peer) : undefined;
      const peerName = d.type === SOCK_DGRAM && pd?.peer === d.ino && pd.name.length ? pd.name : undefined;
      ctx.unix.queues.push(...queueItems(id, peekQueue(taken, d.type, what, d.rqueue, (d.shutdown & 1) !== 0, onRights, peerName), rights));
    }
    const cred = d.state === TCP_ESTABLISHED && !iconOf(ctx.unix, ino) ? peerCred(taken) : undefined;
    const usk = create(UnixSkEntrySchema, {
      id, ino, type: d.type, state: d.state, flags: p.info.flags, uflags: 0,
      backlog: d.state === TCP_LISTEN ? d.wqueue : 0, peer: iconOf(ctx.unix, ino)?.listener ?? d.peer ?? 0, fown: emptyFown(), opts: dumpOpts(taken),
      name: imageName(d.name), shutdown: d.shutdown & 3, ...(binds ? { filePerms: file.perms } : {}), ...(nameDir ? { nameDir } : {}),
      ...(binds && file.deleted ? { deleted: true } : {}), ...(file?.hidden ? { hidden: true } : {}), ...(mntId !== undefined ? { mntId } : {}),
      ...(cred && cred.pid > 0 ? { peerCred: { pid: cred.pid, uid: cred.uid >>> 0, gid: cred.gid >>> 0 } } : {}),
      // Of a network namespace other than the root's: CRIU's ns_id names it.
      ...(ctx.unix.nsOf?.has(ino) && ctx.nsIdOf ? { nsId: ctx.nsIdOf(ctx.unix.nsOf.get(ino)!) } : {}),
    });
    ctx.unix.seen.set(ino, { pid: p.pid, fd: p.fd, entry: usk });
    return create(FileEntrySchema, { type: FdTypes.UNIXSK, id, usk });
  } catch (err) {
    throw failure('E_DUMP_FAILED', `Cannot read ${what()}`, err);
  } finally {
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

function openSocket(e: FileEntry, ctx: RestoreFileCtx): ReturnType<FileKind['open']> {
  const u = e.usk!;
  const st = ctx.unix;
  if (u.uflags & USK_EXTERN) throw new StasisError('E_CORRUPT', `Socket ${u.id} (socket:[${u.ino}]) is outside the tree: no task can hold it`);
  // The files a queue passes are sent again with it: open first (a pair's two queues are filled together).
  const peerId = u.peer && st.rights.size ? [...ctx.files.values()].find((f) => f.usk?.ino === u.peer)?.id : undefined;
  const own = peerId !== undefined ? [u.id, peerId] : [u.id];
  // A datagram pair whose packets pass its own ends (zdtm scm06) is made first, its queues sent once it is open.
  if (!st.made.has(u.ino) && !passedOpen(ctx, own, ...own)) return { status: 'retry' };
  const loops = !st.made.has(u.ino) && !passedOpen(ctx, [], ...own);
  const what = `socket ${u.id} (socket:[${u.ino}])`;
  const noLoop = () => {
    if (loops) throw new StasisError('E_UNSUPPORTED', `Cannot restore ${what}: its queue passes the socket itself, which stasis restores only in a datagram pair`);
  };
  const selfConnected = u.type === SOCK_DGRAM && u.peer === u.ino;
  if (u.name.length && (u.peer === 0 || selfConnected) && (u.state === TCP_LISTEN || u.state === TCP_CLOSE || u.type === SOCK_DGRAM)) {
    noLoop();
    return { status: 'done', fd: makeBound(u, ctx) };
  }
  const made = st.made.get(u.ino);
  if (made !== undefined) {
    st.made.delete(u.ino);
    return { status: 'done', fd: made };
  }
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
    noLoop();
    const [a, b] = pairOf(u, ctx);
    try {
      fillQueue(b, queue, u.type, what, passed(u.id, ctx));
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
  if (peer.uflags & USK_EXTERN) return connectOutside(u, peer, ctx);
  if (peer.state === TCP_LISTEN && u.type !== SOCK_DGRAM) return connectPending(u, peer, ctx);
  if (peer.peer !== u.ino) {
    // Connected one way, to a bound datagram socket: connected again once that one is bound.
    if (st.bound.get(peer.ino) === undefined) return { status: 'retry' };
    const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
    try {
      connectTo(fd, peer, ctx);
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
  // Each queue is sent from the other end (bound again already: a sender's name the receiver sees).
  const fill = () => {
    fillQueue(b, queue, u.type, what, passed(u.id, ctx));
    fillQueue(a, st.queues.get(peer.id), u.type, `socket ${peer.id} (socket:[${peer.ino}])`, passed(peer.id, ctx));
    setUp(a, u);
    setUp(b, peer);
  };
  // Both ends are open files by then: a failure closes them with the rest.
  if (loops) st.deferred.push(fill);
  else {
    try {
      fill();
    } catch (err) {
      closeFd(a);
      closeFd(b);
      throw err;
    }
  }
  st.made.set(peer.ino, b);
  return { status: 'done', fd: a };
}

export const unixSocket = {
  name: 'Unix socket',
  type: FdTypes.UNIXSK,
  detect: (p, ctx) => /^socket:\[\d+\]$/.test(p.link) && diagOf(ctx.unix, inoOf(p), (read) => ctx.tcp.inNetns(read)) !== undefined,
  dump: dumpSocket,
  open: (e, ctx) => {
    if (!e.usk?.opts) throw new StasisError('E_CORRUPT', `File ${e.id} is a Unix socket without its entry`);
    try {
      // A socket of the tree's own network namespace is made in the new one, its abstract name bound there;
      // one of another namespace of the tree in that one.
      const ns = e.usk.nsId !== undefined ? ctx.netnsOf?.(e.usk.nsId) : undefined;
      return ns ? inNamespace(ns, 'net', CLONE_NEWNET, () => openSocket(e, ctx)) : ctx.tcp.inNetns(() => openSocket(e, ctx));
    } catch (err) {
      throw failure('E_RESTORE_FAILED', `Cannot make socket ${e.id} (socket:[${e.usk.ino}])`, err);
    }
  },
  settle: (ctx) => {
    for (const fill of ctx.unix.deferred.splice(0)) fill();
  },
  finish: (ctx) => {
    ctx.unix.deferred.length = 0;
    for (const fd of ctx.unix.made.values()) closeFd(fd);
    ctx.unix.made.clear();
    ctx.unix.bound.clear();
    for (const fd of ctx.unix.ghosts.values()) closeFd(fd);
    ctx.unix.ghosts.clear();
  },
} satisfies FileKind;

/**
 * files.img in CRIU's order for Unix sockets. CRIU links each socket to its peer while it
 * reads the entries, so a socket connected one way (a datagram sender to a bound socket)
 * comes after its peer; of the two ends of a connection, the one whose lowest-pid holder is
 * lower comes later: CRIU makes the first end it meets resolving pairs (from the last entry
 * back) the pair's master, to be opened by a task that opens (or can be given) the other end
 * too, and a master held first by a child that shares the peer with its parent hits CRIU's
 * BUG_ON at sk-unix.c:1713 (unixtree's fds 20 and 21). `holder` is the lowest pid holding
 * each file id. The client ends of connections not accepted yet come in the order of their
 * listener's queue (`pending`: a client's place there), which restore connects them in.
 * Other entries keep their places.
 */
export function criuFileOrder(files: FileEntry[], holder: Map<number, number>, pending?: (ino: number) => number | undefined): FileEntry[] {
  const slots = files.flatMap((f, i) => (f.usk ? [i] : []));
  const byIno = new Map(slots.map((i) => [files[i]!.usk!.ino, files[i]!] as const));
  const mutual = (f: FileEntry): FileEntry | undefined => {
    const p = byIno.get(f.usk!.peer);
    return p && p !== f && p.usk!.peer === f.usk!.ino ? p : undefined;
  };
  const order: FileEntry[] = [];
  const seen = new Set<FileEntry>();
  const visit = (f: FileEntry): void => {
    if (seen.has(f)) return;
    seen.add(f);
    const pair = mutual(f);
    if (pair) seen.add(pair);
    const ends = !pair ? [f] : (holder.get(f.id) ?? 0) < (holder.get(pair.id) ?? 0) ? [pair, f] : [f, pair];
    for (const e of ends) {
      const p = byIno.get(e.usk!.peer);
      if (p && p !== e && !ends.includes(p)) visit(p);
    }
    order.push(...ends);
  };
  for (const i of slots) visit(files[i]!);
  // Each listener's clients among their own places (after the listener: CRIU resolves a peer it has read).
  for (const listener of new Set(order.flatMap((f) => (pending?.(f.usk!.ino) !== undefined ? [f.usk!.peer] : [])))) {
    const at = order.flatMap((f, j) => (f.usk!.peer === listener && pending!(f.usk!.ino) !== undefined ? [j] : []));
    const queued = at.map((j) => order[j]!).sort((a, b) => pending!(a.usk!.ino)! - pending!(b.usk!.ino)!);
    at.forEach((j, k) => (order[j] = queued[k]!));
  }
  const out = [...files];
  slots.forEach((slot, j) => (out[slot] = order[j]!));
  return out;
}

export { checkUnixPeers };
