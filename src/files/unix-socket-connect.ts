// Unix sockets at restore: binding names (removed files kept open), connections made again
// (by socketpair, or through the restored listener or a stand-in one, so that an accepted end
// gets its name back), connections not accepted yet, peers outside the tree, and the flags,
// options and shutdown state put back once the queues are in. openSocket() in unix-socket.ts
// decides which of these an entry needs.
import fs from 'node:fs';
import { join as pathJoin } from 'node:path';
import type { UnixSkEntry } from '../image/gen/stasis/sk-unix_pb.js';
import {
  accept4, bindUnix, closeFd, connectUnix, listen, shutdown, socket, socketpair, SyscallError,
  AF_UNIX, SHUT_RD, SHUT_WR, SOCK_CLOEXEC, SOCK_DGRAM, SO_RCVBUF, SO_SNDBUF,
  inDirectory, inMountNsCopy, inRoot,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind, RestoreFileCtx } from './kind.js';
import { setStatusFlags } from './pipe-data.js';
import { fillQueue } from './unix-socket-data.js';
import { bindRemoved } from './unix-socket-path.js';
import { setBufSize, setGeneralOpts, setTimeouts } from './sk-opts.js';

const TCP_ESTABLISHED = 1, TCP_LISTEN = 10;
const SOCK_NONBLOCK = 0o4000;

/** Where a path-bound socket's file is. */
const fsPath = (u: UnixSkEntry) => {
  const name = Buffer.from(u.name).toString();
  return u.nameDir ? pathJoin(u.nameDir, name) : name;
};

/** A name in the abstract namespace (its first byte NUL): no file stands for it. */
const isAbstract = (u: UnixSkEntry) => u.name.length > 0 && u.name[0] === 0;

/**
 * The root `u`'s name is bound from: a nested mount namespace's (the root of a task in it)
 * where its file was on a mount of one, else the tree's (in a mount namespace of its own).
 */
function rootFor(u: UnixSkEntry, ctx: RestoreFileCtx): string | undefined {
  // (CRIU writes a mount for every socket: one of the root's namespace is the tree's root.)
  return (u.mntId >= 0 ? ctx.rootOf?.(u.mntId) : undefined) ?? ctx.root;
}

/** Where Node's fs finds a path of the tree: through its root in a mount namespace of its own. */
const inTree = (root: string | undefined, path: string) => (root ? `${root}${path}` : path);

/**
 * Binds or connects to `u`'s name as the task did: a relative name from its directory; in a
 * mount namespace of the tree's own, from its root (the name is the string bind() is given).
 */
function byName(u: UnixSkEntry, ctx: RestoreFileCtx, op: (name: Buffer) => void): void {
  const name = Buffer.from(u.name);
  const root = isAbstract(u) ? undefined : rootFor(u, ctx);
  if (root) return inRoot(root, () => op(name), u.nameDir || '/');
  if (!u.nameDir) return op(name);
  // Only a bind() made from that directory gives the socket its relative name back.
  inDirectory(u.nameDir, () => op(name));
}

/**
 * Runs `fn` with the path stasis reaches `u`'s file by and a way to bind or connect by its
 * name: where a mount hides its directory (`hidden`), through a clone of the mount at its
 * name_dir alone (taken in a copy of the tree's mount namespace), in which the relative name
 * leads to the directory under the mount, as it did when it was bound.
 */
function atName<T>(u: UnixSkEntry, ctx: RestoreFileCtx, fn: (path: string, byIt: (op: (name: Buffer) => void) => void) => T): T {
  if (!u.hidden) return fn(inTree(isAbstract(u) ? undefined : rootFor(u, ctx), fsPath(u)), (op) => byName(u, ctx, op));
  const pid = /^\/proc\/(\d+)\/root$/.exec(rootFor(u, ctx) ?? '')?.[1];
  if (pid === undefined || !u.nameDir) {
    throw new StasisError('E_RESTORE_FAILED', `Cannot bind socket ${u.id} to ${fsPath(u)}: a mount hides its file, which stasis makes again only inside a mount namespace of the tree's own, from the directory the name was bound in`);
  }
  const clone = inMountNsCopy(Number(pid), (copy) => copy.cloneAt(u.nameDir!));
  try {
    const dir = `/proc/self/fd/${clone}`, name = Buffer.from(u.name);
    return fn(`${dir}/${name.toString()}`, (op) => inDirectory(dir, () => op(name)));
  } finally {
    closeFd(clone);
  }
}

/** Flags, options and shutdown state of the image, on a socket whose queue is in place. */
export function setUp(fd: number, u: UnixSkEntry): void {
  setStatusFlags(fd, u.flags);
  const o = u.opts!;
  // setsockopt doubles what it is given; the image holds getsockopt's (doubled) values.
  setBufSize(fd, SO_SNDBUF, o.soSndbuf >> 1);
  setBufSize(fd, SO_RCVBUF, o.soRcvbuf >> 1);
  setTimeouts(fd, o);
  setGeneralOpts(fd, o);
  const sh = u.shutdown ?? 0;
  if (sh & 1) shutdown(fd, SHUT_RD);
  if (sh & 2) shutdown(fd, SHUT_WR);
}

/**
 * Binds `fd` to `u`'s name, its file with `u`'s mode and owner; a file that was removed is
 * removed again, and kept open for those that connect to it (connectTo()).
 */
function bindName(fd: number, u: UnixSkEntry, ctx: RestoreFileCtx): void {
  atName(u, ctx, (path, byIt) => bindAt(fd, u, ctx, path, byIt));
  ctx.unix.bound.set(u.ino, fd);
}

function bindAt(fd: number, u: UnixSkEntry, ctx: RestoreFileCtx, path: string, byIt: (op: (name: Buffer) => void) => void): void {
  const bind = () => {
    byIt((n) => bindUnix(fd, n));
    if (u.filePerms && !isAbstract(u)) {
      fs.chmodSync(path, u.filePerms.mode);
      fs.chownSync(path, u.filePerms.uid, u.filePerms.gid);
    }
  };
  if (u.deleted && !isAbstract(u)) {
    ctx.unix.ghosts.set(u.ino, bindRemoved(path, bind));
  } else {
    const st = isAbstract(u) ? undefined : fs.lstatSync(path, { throwIfNoEntry: false });
    if (st && !st.isSocket()) throw new StasisError('E_RESTORE_FAILED', `Cannot bind socket ${u.id} to ${path}: it exists and is not a socket`);
    // A socket file left by the dumped socket (or an earlier restore) holds the name: only a socket file is removed.
    if (st) fs.unlinkSync(path);
    bind();
  }
}

/**
 * A listener, a bound socket never connected, or a datagram socket bound to receive (its
 * queue put back through a socket connected to it), or connected to itself (once its queue is).
 */
export function makeBound(u: UnixSkEntry, ctx: RestoreFileCtx): number {
  const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    bindName(fd, u, ctx);
    if (u.state === TCP_LISTEN) listen(fd, u.backlog);
    const queue = ctx.unix.queues.get(u.id);
    if (queue?.length) {
      const sender = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
      try {
        connectTo(sender, u, ctx);
        fillQueue(sender, queue, u.type, `socket ${u.id} bound to ${fsPath(u)}`, passed(u.id, ctx));
      } finally {
        closeFd(sender);
      }
    }
    if (u.peer === u.ino) connectTo(fd, u, ctx);
    setUp(fd, u);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return fd;
}

/** Connects `fd` to the bound socket `to`: by its name, or through its file kept open if that was removed. */
export function connectTo(fd: number, to: UnixSkEntry, ctx: RestoreFileCtx): void {
  const file = ctx.unix.ghosts.get(to.ino);
  if (file !== undefined) return connectUnix(fd, Buffer.from(`/proc/self/fd/${file}`));
  atName(to, ctx, (_path, byIt) => byIt((n) => connectUnix(fd, n)));
}

/** The two ends of `u`'s connection: [u's, its peer's]; undefined while the listener it came from is not open yet. */
export function makeConnection(u: UnixSkEntry, peer: UnixSkEntry, ctx: RestoreFileCtx): [number, number] | undefined {
  // A datagram pair: either end may have been bound (by itself: no datagram socket takes a name from a peer).
  if (u.type === SOCK_DGRAM) {
    const ends = pairOf(u, ctx);
    try {
      if (u.name.length) bindName(ends[0], u, ctx);
      if (peer.name.length) bindName(ends[1], peer, ctx);
    } catch (err) {
      ends.forEach(closeFd);
      throw err;
    }
    return ends;
  }
  const accepted = u.name.length ? u : peer.name.length ? peer : undefined;
  if (accepted) {
    const key = Buffer.from(accepted.name).toString('hex');
    // The dump refuses an accepted end whose name more than one listener of the tree has.
    const listener = [...ctx.files.values()].find((f) => f.usk?.state === TCP_LISTEN && Buffer.from(f.usk.name).toString('hex') === key)?.usk;
    if (listener) {
      const lfd = ctx.unix.bound.get(listener.ino);
      if (lfd === undefined) return undefined;
      const client = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
      let acc = -1;
      try {
        connectTo(client, listener, ctx);
        acc = accept4(lfd, SOCK_CLOEXEC);
      } catch (err) {
        closeFd(client);
        throw err;
      }
      ctx.unix.acceptedMade.add(accepted.ino);
      return accepted === u ? [acc, client] : [client, acc];
    }
    const viaTemp = acceptThroughTemporaryListener(u, accepted, ctx);
    if (viaTemp) return viaTemp;
  }
  return pairOf(u, ctx);
}

/**
 * A connection its listener had not accepted yet: the client end connects to the restored
 * listener again. Only once every connection accepted from that listener is made (each is
 * made by connecting and accepting, which would take this one instead) and the connections
 * queued before it are (files.img holds them in the listener's queue order, which accept() keeps).
 */
export function connectPending(u: UnixSkEntry, listener: UnixSkEntry, ctx: RestoreFileCtx): ReturnType<FileKind['open']> {
  const st = ctx.unix;
  const key = Buffer.from(listener.name).toString('hex');
  if (st.queues.get(u.id)?.length) throw new StasisError('E_CORRUPT', `Socket ${u.id} (socket:[${u.ino}]) has packets queued, but its listener never accepted the connection that could have sent them`);
  if (st.bound.get(listener.ino) === undefined) return { status: 'retry' };
  let before = true;
  for (const f of ctx.files.values()) {
    const o = f.usk;
    if (!o || o.type === SOCK_DGRAM) continue;
    if (o === u) before = false;
    else if (before && o.peer === listener.ino && !st.pendingMade.has(o.ino)) return { status: 'retry' };
    const acceptedHere = o.state === TCP_ESTABLISHED && o.peer !== 0 && st.byIno?.get(o.peer)?.peer === o.ino && Buffer.from(o.name).toString('hex') === key;
    if (acceptedHere && !st.acceptedMade.has(o.ino)) return { status: 'retry' };
  }
  // Not blocking: a listener whose backlog is full would hold stasis in connect().
  const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC | SOCK_NONBLOCK);
  try {
    connectTo(fd, listener, ctx);
    setUp(fd, u);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  st.pendingMade.add(u.ino);
  return { status: 'done', fd };
}

/** A datagram socket connected to a socket outside the tree: connected to its name again, whatever holds it now (CRIU's --ext-unix-sk). */
export function connectOutside(u: UnixSkEntry, outside: UnixSkEntry, ctx: RestoreFileCtx): ReturnType<FileKind['open']> {
  const name = Buffer.from(outside.name);
  const shown = name[0] === 0 ? `@${name.subarray(1).toString()}` : name.toString();
  if (!ctx.unix.extUnixSk) {
    throw new StasisError('E_UNSUPPORTED', `Cannot restore socket ${u.id} (socket:[${u.ino}]): it was connected to ${shown} outside the tree, which needs --ext-unix-sk`);
  }
  const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    // A path of the tree's own mount namespace is found from its root.
    if (ctx.root && name[0] !== 0) inRoot(ctx.root, () => connectUnix(fd, name));
    else connectUnix(fd, name);
    setUp(fd, u);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return { status: 'done', fd };
}

/** A socket pair, made by the pid and credentials that made `u`'s where the image has them. */
export function pairOf(u: UnixSkEntry, ctx: RestoreFileCtx): [number, number] {
  const c = u.peerCred;
  const made = c && ctx.socketPairAs?.(u.type | SOCK_CLOEXEC, c);
  if (made) return made;
  // Its pid is taken, or the pair is of the tree's own network namespace (the holders are not in it).
  if (c) ctx.log?.warn(`socket ${u.id} (socket:[${u.ino}]): its pair is made by stasis, whose pid SO_PEERCRED names now instead of ${c.pid}`);
  return socketpair(u.type | SOCK_CLOEXEC);
}

/**
 * An accepted end whose listener was closed: a listener of stasis's own, bound to the path
 * for a moment, gives it its name back. The path is left as it was (a stale socket file,
 * another file, a live socket's, nothing): it is moved aside for that moment and back, as
 * for a removed socket (bindRemoved()). An abstract name: see acceptThroughAbstract().
 */
function acceptThroughTemporaryListener(u: UnixSkEntry, accepted: UnixSkEntry, ctx: RestoreFileCtx): [number, number] | undefined {
  if (isAbstract(accepted)) return acceptThroughAbstract(u, accepted);
  const l = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  const client = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  let acc = -1;
  try {
    atName(accepted, ctx, (path, byIt) => closeFd(bindRemoved(path, () => {
      byIt((n) => bindUnix(l, n));
      listen(l, 1);
      byIt((n) => connectUnix(client, n));
      acc = accept4(l, SOCK_CLOEXEC);
    })));
    return accepted === u ? [acc, client] : [client, acc];
  } catch (err) {
    closeFd(client);
    if (acc >= 0) closeFd(acc);
    throw err;
  } finally {
    closeFd(l);
  }
}

/** As acceptThroughTemporaryListener(), for an abstract name: undefined where a live socket holds it. */
function acceptThroughAbstract(u: UnixSkEntry, accepted: UnixSkEntry): [number, number] | undefined {
  const l = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    try {
      bindUnix(l, Buffer.from(accepted.name));
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'EADDRINUSE') return undefined;
      throw err;
    }
    listen(l, 1);
    const client = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
    try {
      connectUnix(client, Buffer.from(accepted.name));
      const acc = accept4(l, SOCK_CLOEXEC);
      return accepted === u ? [acc, client] : [client, acc];
    } catch (err) {
      closeFd(client);
      throw err;
    }
  } finally {
    closeFd(l);
  }
}

/** The fds in stasis of the files socket `id`'s queued packets pass (by packet index). */
export function passed(id: number, ctx: RestoreFileCtx): Map<number, number[]> | undefined {
  const byPacket = ctx.unix.rights.get(id);
  if (!byPacket) return undefined;
  return new Map([...byPacket].map(([i, ids]) => [i, ids.map((f) => ctx.fdOf?.(f) ?? -1)]));
}

/** Whether every file passed in the queues of sockets `ids` is open already (else: retry once they are), but those of `made` (made by the caller). */
export function passedOpen(ctx: RestoreFileCtx, made: number[], ...ids: number[]): boolean {
  return ids.every((id) => [...(ctx.unix.rights.get(id)?.values() ?? [])].flat().every((f) => made.includes(f) || ctx.fdOf?.(f) !== undefined));
}
