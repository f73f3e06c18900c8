// What Unix sockets keep for one dump or one restore: sock_diag's view of the sockets, the
// queued packets, and the sockets made at restore for entries still to come.
//
// Queues are taken without consuming them: SO_PEEK_OFF makes each recv(MSG_PEEK) start where
// the last one ended, so a walk reads the whole receive queue, message by message on a
// datagram socket (MSG_TRUNC tells a message's whole length); the offset is then set back to
// what it was, so a --leave-running dump leaves the socket as it found it. Each packet goes
// into sk-queues.img as CRIU's SkPacketEntry (id_for: the socket whose queue holds it).
import { create } from '@bufbuild/protobuf';
import { SkPacketEntrySchema, type SkPacketEntry } from '../image/gen/stasis/sk-packet_pb.js';
import { UnixSkEntrySchema, type UnixSkEntry } from '../image/gen/stasis/sk-unix_pb.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { SkOptsEntrySchema } from '../image/gen/stasis/sk-opts_pb.js';
import { emptyFown } from './reg.js';
import { imageExists, readImage, writeImage, type PayloadItem } from '../image/index.js';
import {
  closeFd as syscallClose, getsockoptInt, recvmsgInto, sendMessage, sendRaw, setsockoptInt, unixSockets, type UnixDiag,
  MSG_DONTWAIT, MSG_NOSIGNAL, MSG_PEEK, MSG_TRUNC, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET, SO_PEEK_OFF,
  SO_SNDBUF, SyscallError, inNamespace, CLONE_NEWNET,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { setBufSize } from './sk-opts.js';

const EAGAIN = 11, MSG_CMSG_CLOEXEC = 0x40000000, TCP_LISTEN = 10, TCP_ESTABLISHED = 1;
/** UnixSkEntry.uflags: a socket outside the tree, which restore does not make (CRIU's USK_EXTERN). */
export const USK_EXTERN = 1;

/** The Unix sockets of one dump, shared by its tasks. */
export interface UnixSkSink {
  /** sock_diag's view, read when the first socket shows up (every task is frozen by then). */
  diag: Map<number, UnixDiag> | undefined;
  /** Dumped sockets by inode: the first fd seen holding each, and its entry. */
  seen: Map<number, { pid: number; fd: number; entry: UnixSkEntry }>;
  queues: PayloadItem<SkPacketEntry>[];
  /** Fds in flight (SCM_RIGHTS) taken into stasis while dumping: open until the dump ends (file ids compare with them). */
  inFlight: number[];
  /** Datagram sockets connected to a bound socket outside the tree are dumped (CRIU's --ext-unix-sk). */
  extUnixSk: boolean;
  /** Those outside sockets, by inode: their names (each gets an entry of its own, CRIU's USK_EXTERN). */
  externs: Map<number, Buffer>;
  /** The tree has a network namespace of its own: sock_diag is read in it, abstract names are its. */
  ownNetns?: boolean;
  /** The tree's network namespaces other than its root's (ns/net-nested.ts): sock_diag is read in each too. */
  nestedNetns?: { link: string; path: string }[];
  /** The sockets of those namespaces (by inode): the link of each one's. */
  nsOf?: Map<number, string>;
  /** Connections not accepted yet: by client inode, the listener's inode and the place in its queue (built on first use). */
  icons?: Map<number, { listener: number; index: number }>;
  /** Socket files of tmpfs mounts, left out of their archives, by `dev:ino` (ns/mnt.ts): each must be one a socket here binds again. */
  tmpfsSockets: Map<string, string>;
  /** The files (`dev:ino`) of the path-bound sockets dumped whose restore binds them again. */
  boundFiles: Set<string>;
}

/** Closes the fds in flight the dump took. */
export function closeInFlight(sink: UnixSkSink): void {
  for (const fd of sink.inFlight.splice(0)) syscallClose(fd);
}

export function newUnixSkSink(): UnixSkSink {
  return { diag: undefined, seen: new Map(), queues: [], inFlight: [], extUnixSk: false, externs: new Map(), tmpfsSockets: new Map(), boundFiles: new Set() };
}

/** sock_diag's view of socket `ino`; `inNetns` runs the query in the tree's own network namespace, where it has one. */
export function diagOf(sink: UnixSkSink, ino: number, inNetns: (read: () => Map<number, UnixDiag>) => Map<number, UnixDiag> = (read) => read()): UnixDiag | undefined {
  try {
    if (!sink.diag) {
      // Inodes are the kernel's, one count for every namespace: one map holds them all.
      const all = inNetns(unixSockets);
      sink.nsOf = new Map();
      for (const n of sink.nestedNetns ?? []) {
        for (const [i, d] of inNamespace(n.path, 'net', CLONE_NEWNET, unixSockets)) {
          all.set(i, d);
          sink.nsOf.set(i, n.link);
        }
      }
      sink.diag = all;
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new StasisError('E_UNSUPPORTED', `Cannot read the Unix sockets of the tree through sock_diag (a kernel without CONFIG_UNIX_DIAG?): ${why}`, { cause: err });
  }
  return sink.diag.get(ino);
}

/**
 * The listener whose queue holds the connection `ino` (a client end) not accepted yet, and
 * its place there (accept() takes them in that order); undefined if none does.
 */
export function iconOf(sink: UnixSkSink, ino: number): { listener: number; index: number } | undefined {
  if (!sink.icons) {
    sink.icons = new Map();
    for (const d of sink.diag?.values() ?? []) d.icons.forEach((c, index) => c && sink.icons!.set(c, { listener: d.ino, index }));
  }
  return sink.icons.get(ino);
}

/** Writes sk-queues.img when any socket has data queued; returns the files written. */
export function writeSkQueues(dir: string, sink: UnixSkSink): string[] {
  return sink.queues.length ? [writeImage(dir, 'sk-queues', undefined, sink.queues)] : [];
}

/**
 * Once every task's fds are dumped: each connected socket's peer must be a socket of the
 * tree that names it back, and at most one end of a connection may be bound.
 */
export function checkUnixPeers(sink: UnixSkSink): void {
  for (const [file, what] of sink.tmpfsSockets) {
    if (!sink.boundFiles.has(file)) throw new StasisError('E_UNSUPPORTED', `Cannot dump the tree: ${what}, to which no socket of the tree is bound, which a tmpfs archive cannot keep`);
  }
  for (const [ino, s] of sink.seen) {
    const u = s.entry;
    if (u.state === TCP_LISTEN) {
      // Its queue is restored by connecting each client end again: every one must be the tree's.
      const out = sink.diag?.get(ino)?.icons.find((c) => !sink.seen.has(c));
      if (out !== undefined) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${s.fd} of pid ${s.pid}: socket:[${ino}] is listening with a connection not accepted yet from socket:[${out}], which no task of the dumped tree holds (a peer outside the tree)`);
      }
    }
    const why = (m: string) => new StasisError('E_UNSUPPORTED', `Cannot dump fd ${s.fd} of pid ${s.pid}: socket:[${ino}] ${m}`);
    // Its closed peer's queue comes from a socketpair, made in its maker's namespace.
    if (u.peer === 0 && u.state === TCP_ESTABLISHED && sink.nsOf?.has(ino)) throw why(`was connected in network namespace ${sink.nsOf.get(ino)}, not the root's; stasis restores only unconnected Unix sockets in the tree's other network namespaces yet`);
    if (u.peer === 0) continue;
    const p = sink.seen.get(u.peer);
    if (!p && sink.extUnixSk) {
      // CRIU's --ext-unix-sk: a datagram socket connected to a socket outside, which restore connects to by its name.
      const o = sink.diag?.get(u.peer);
      const outside = `is connected to socket:[${u.peer}], which no task of the dumped tree holds`;
      if (u.type !== SOCK_DGRAM || !o || o.peer === ino) throw why(`${outside}, and is not a datagram socket connected one way to it: --ext-unix-sk cannot restore it`);
      if (!o.name.length) throw why(`${outside} and which is not bound: --ext-unix-sk cannot connect to it again`);
      if (sink.ownNetns && o.name[0] === 0) throw why(`${outside}, bound to an abstract name of the tree's own network namespace, which the new one will not have: --ext-unix-sk cannot connect to it again`);
      if (o.name[0] !== 0 && o.name[0] !== 0x2f) throw why(`${outside}, bound to the relative name ${o.name.toString()}: --ext-unix-sk cannot tell where it is`);
      sink.externs.set(u.peer, o.name);
      continue;
    }
    if (!p) throw why(`is connected to socket:[${u.peer}], which no task of the dumped tree holds (a peer outside the tree)`);
    // A connection is made again in one namespace (a socketpair, or a connect by name in the sender's).
    const nsA = sink.nsOf?.get(ino), nsB = sink.nsOf?.get(u.peer);
    if (nsA !== undefined || nsB !== undefined) throw why(`is connected to socket:[${u.peer}] ${nsA === nsB ? `in network namespace ${nsA}` : 'across two network namespaces'}, not the root's; stasis restores only unconnected Unix sockets in the tree's other network namespaces yet`);
    // One way: a datagram socket connected to a bound one, which sends back through sendto()
    // only, or a connection the listener has not accepted yet.
    const oneWay = p.entry.peer !== ino;
    const pending = u.type !== SOCK_DGRAM && p.entry.state === TCP_LISTEN;
    if (oneWay && !pending && !(u.type === SOCK_DGRAM && p.entry.name.length && !u.name.length)) {
      throw why(`is connected one way to socket:[${u.peer}], not supported yet`);
    }
    if (oneWay) continue;
    // A datagram socket's name is its own (a pair's ends bound after socketpair(), or one connected to itself).
    if (u.type === SOCK_DGRAM) continue;
    if (u.name.length && p.entry.name.length) throw why(`and its peer socket:[${u.peer}] are both bound, not supported yet`);
    // An accepted end is made again through the listener of its name: it must be the only one.
    const named = u.name.length ? u : p.entry.name.length ? p.entry : undefined;
    if (named && u === named) {
      const same = (o: UnixSkEntry) => o.state === TCP_LISTEN && Buffer.compare(Buffer.from(o.name), Buffer.from(named.name)) === 0 && o.nameDir === named.nameDir;
      const n = [...sink.seen.values()].filter((o) => same(o.entry)).length;
      if (n > 1) throw why(`was accepted from one of ${n} listeners bound to ${Buffer.from(named.name).toString()}, which restore cannot tell apart, not supported yet`);
    }
  }
}

/**
 * Takes one socket's receive queue without consuming it: one buffer for a stream socket, one
 * per message otherwise. `queued` is sock_diag's count of queued bytes and `shutRd` whether
 * the socket can receive no more: a seqpacket socket then reads 0 at the end of its queue,
 * as it does for an empty message, so 0 past the last queued byte is taken as the end.
 */
export function peekQueue(
  fd: number, type: number, what: () => string, queued = 0, shutRd = false,
  onRights?: (index: number, fds: number[]) => void, peerName?: Buffer,
): Buffer[] {
  const stream = type === SOCK_STREAM;
  const eofAtEnd = type === SOCK_SEQPACKET && shutRd;
  const old = getsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF);
  const out: Buffer[] = [];
  let buf = Buffer.alloc(1 << 16);
  let off = 0;
  setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  try {
    for (;;) {
      // A stream's bytes with fds and those without are not told apart here: only messages keep them.
      const keep = onRights !== undefined && !stream;
      const r = recvmsgInto(fd, buf, 0, buf.length, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (stream ? 0 : MSG_TRUNC), keep);
      if (r.n === -EAGAIN) break;
      if (r.fds.length && r.n > buf.length) {
        for (const f of r.fds) syscallClose(f); // looked at again below
      } else if (r.fds.length) onRights!(out.length, r.fds);
      if (r.rights && !keep) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} has file descriptors in flight (SCM_RIGHTS), not supported yet`);
      if (r.creds) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} has messages with credentials in flight (SO_PASSCRED, SCM_CREDENTIALS), not supported yet`);
      // Restore sends the queue from the peer, bound again first (a pair's two ends), else from
      // an unbound socket: only the peer's own name survives as a sender's address.
      // (A stream socket reports its peer's name here, which restore does keep.)
      if (type === SOCK_DGRAM && r.from.length && !(peerName && sameName(r.from, peerName))) {
        const from = r.from[0] === 0 ? `@${r.from.subarray(1).toString()}` : r.from.subarray(0, r.from.includes(0) ? r.from.indexOf(0) : r.from.length).toString();
        throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} has a datagram queued from the bound socket ${from}, not supported yet`);
      }
      if (stream) {
        if (r.n === 0) break; // end of file: the peer shut its side, everything is taken
        out.push(Buffer.from(buf.subarray(0, r.n)));
        off += r.n;
        continue;
      }
      if (r.n === 0 && eofAtEnd && off >= queued) break;
      if (r.n > buf.length) {
        // Cut short: look at the same message again with room for all of it.
        buf = Buffer.alloc(r.n);
        setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, off);
        continue;
      }
      out.push(Buffer.from(buf.subarray(0, r.n)));
      off += r.n;
    }
  } finally {
    setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, old);
  }
  return stream ? (out.length ? [Buffer.concat(out)] : []) : out;
}

/** Whether a sender's address (a path with the NUL the kernel may count after it) is the bound name `name` (sock_diag's, without one). */
function sameName(from: Buffer, name: Buffer): boolean {
  const path = from[0] !== 0 && from.includes(0) ? from.subarray(0, from.indexOf(0)) : from;
  return path.equals(name);
}

/**
 * A name as UnixSkEntry holds it: a path with the NUL the kernel keeps after it, as CRIU
 * writes it (CRIU's restore reads a removed socket's name as a C string); stasis's decoder
 * takes it off again (image/compat.ts). An abstract name is bytes, kept whole.
 */
export function imageName(name: Buffer): Buffer {
  return name.length && name[0] !== 0 ? Buffer.concat([name, Buffer.alloc(1)]) : name;
}

/** The entries of the sockets outside the tree that sockets of the tree are connected to (CRIU's USK_EXTERN), with ids from `fresh`. */
export function externEntries(sink: UnixSkSink, fresh: () => number): FileEntry[] {
  return [...sink.externs].map(([ino, name]) => {
    const id = fresh();
    const usk = create(UnixSkEntrySchema, {
      id, ino, type: SOCK_DGRAM, state: TCP_LISTEN, flags: 0, uflags: USK_EXTERN, backlog: 0, peer: 0,
      fown: emptyFown(), name: imageName(name),
      opts: create(SkOptsEntrySchema, { soSndbuf: 0, soRcvbuf: 0, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n }),
    });
    return create(FileEntrySchema, { type: FdTypes.UNIXSK, id, usk });
  });
}

/**
 * Images CRIU wrote hold the connections a listener has not accepted yet in no set order
 * (stasis's hold them in the listener's queue order): with more than one on a listener,
 * accept() could return them in another order, so such images are refused.
 */
export function refuseUnorderedPending(files: Map<number, FileEntry>): void {
  const listeners = new Map([...files.values()].flatMap((f) => (f.usk?.state === TCP_LISTEN && f.usk.type !== SOCK_DGRAM ? [[f.usk.ino, 0] as [number, number]] : [])));
  for (const f of files.values()) {
    const n = f.usk && listeners.get(f.usk.peer);
    if (n === undefined) continue;
    listeners.set(f.usk!.peer, n + 1);
    if (n + 1 > 1) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore these CRIU images: listening socket:[${f.usk!.peer}] has connections not accepted yet, whose order CRIU's images do not keep (accept() could return them in another order)`);
    }
  }
}

/** The per-restore state of Unix sockets. */
export interface UnixRestoreState {
  /** Sockets outside the tree (USK_EXTERN entries) are connected to by name (CRIU's --ext-unix-sk); without it such an image is refused. */
  extUnixSk: boolean;
  /** Packets to queue, by the id of the socket whose receive queue holds them. */
  queues: Map<number, Buffer[]>;
  /** The files passed with them (SCM_RIGHTS): by socket id, then packet index, the file ids. */
  rights: Map<number, Map<number, number[]>>;
  /** Entries by socket inode (built on first use). */
  byIno: Map<number, UnixSkEntry> | undefined;
  /** Ends made for an entry whose own open() has not come yet, by inode. */
  made: Map<number, number>;
  /** Listening and bound sockets made, by inode (the fds belong to the opened files). */
  bound: Map<number, number>;
  /** O_PATH fds of the files of bound sockets whose file was removed, by inode: others connect to them through /proc/self/fd. */
  ghosts: Map<number, number>;
  /** The accepted ends made through a restored listener, and the client ends connected to one and not accepted yet, by inode. */
  acceptedMade: Set<number>;
  pendingMade: Set<number>;
  /** Queues (with the setup after them) of datagram pairs whose packets pass the pair's own ends: sent once every file is open. */
  deferred: (() => void)[];
}

export function readUnixSkState(dir: string, extUnixSk = false): UnixRestoreState {
  const queues = new Map<number, Buffer[]>();
  const rights = new Map<number, Map<number, number[]>>();
  if (imageExists(dir, 'sk-queues', undefined)) {
    for (const { entry, payload } of readImage(dir, 'sk-queues', undefined)) {
      const q = queues.get(entry.idFor) ?? [];
      const ids = entry.scm.filter((c) => c.type === SCM_RIGHTS).flatMap((c) => c.rights);
      if (ids.length) {
        const m = rights.get(entry.idFor) ?? new Map<number, number[]>();
        m.set(q.length, ids);
        rights.set(entry.idFor, m);
      }
      q.push(Buffer.from(payload.buffer, payload.byteOffset, payload.length));
      queues.set(entry.idFor, q);
    }
  }
  return { extUnixSk, queues, rights, byIno: undefined, made: new Map(), bound: new Map(), ghosts: new Map(), acceptedMade: new Set(), pendingMade: new Set(), deferred: [] };
}

const SCM_RIGHTS = 1;

/** The packets of socket `id`'s queue, with the ids of the files each passes (by packet index). */
export function queueItems(id: number, packets: Buffer[], rights?: Map<number, number[]>): PayloadItem<SkPacketEntry>[] {
  return packets.map((p, i) => {
    const ids = rights?.get(i);
    const scm = ids ? [{ type: SCM_RIGHTS, rights: ids }] : [];
    return { entry: create(SkPacketEntrySchema, { idFor: id, length: p.length, scm }), payload: p };
  });
}

/**
 * Sends `packets` through `sender` (whose peer is the socket they were queued on), never
 * blocking; a packet with files (`rights`: by index, the fds in stasis) passes them again.
 */
export function fillQueue(sender: number, packets: Buffer[] | undefined, type: number, what: string, rights?: Map<number, number[]>): void {
  if (!packets?.length) return;
  // The queue is charged to the sender's buffer: make room for all of it (and the per-packet
  // overhead); the image's own size is set afterwards.
  const need = packets.reduce((n, p) => n + p.length + 1024, 65536);
  if (getsockoptInt(sender, SOL_SOCKET, SO_SNDBUF) < need * 2) setBufSize(sender, SO_SNDBUF, need);
  for (const [i, p] of packets.entries()) {
    const fds = rights?.get(i);
    if (fds) {
      sendMessage(sender, p, fds);
      continue;
    }
    for (let off = 0; ;) {
      const n = sendRaw(sender, p, off, p.length - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n === -EAGAIN || (type !== SOCK_STREAM && n !== p.length)) {
        throw new StasisError('E_RESTORE_FAILED', `Cannot put back the queue of ${what}: packet ${i} of ${packets.length} did not fit (${n} of ${p.length} bytes)`);
      }
      off += n;
      if (off >= p.length) break;
    }
  }
}
