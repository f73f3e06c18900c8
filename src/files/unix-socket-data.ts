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
import type { UnixSkEntry } from '../image/gen/stasis/sk-unix_pb.js';
import { imageExists, readImage, writeImage, type PayloadItem } from '../image/index.js';
import {
  getsockoptInt, recvmsgInto, sendRaw, setsockoptInt, unixSockets, type UnixDiag,
  MSG_DONTWAIT, MSG_NOSIGNAL, MSG_PEEK, MSG_TRUNC, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET, SO_PEEK_OFF,
  SO_SNDBUF, SyscallError,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { setBufSize } from './sk-opts.js';

const EAGAIN = 11;

/** The Unix sockets of one dump, shared by its tasks. */
export interface UnixSkSink {
  /** sock_diag's view, read when the first socket shows up (every task is frozen by then). */
  diag: Map<number, UnixDiag> | undefined;
  /** Dumped sockets by inode: the first fd seen holding each, and its entry. */
  seen: Map<number, { pid: number; fd: number; entry: UnixSkEntry }>;
  queues: PayloadItem<SkPacketEntry>[];
}

export function newUnixSkSink(): UnixSkSink {
  return { diag: undefined, seen: new Map(), queues: [] };
}

export function diagOf(sink: UnixSkSink, ino: number): UnixDiag | undefined {
  try {
    sink.diag ??= unixSockets();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new StasisError('E_UNSUPPORTED', `Cannot read the Unix sockets of the tree through sock_diag (a kernel without CONFIG_UNIX_DIAG?): ${why}`, { cause: err });
  }
  return sink.diag.get(ino);
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
  for (const [ino, s] of sink.seen) {
    const u = s.entry;
    if (u.peer === 0) continue;
    const why = (m: string) => new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${s.fd} of pid ${s.pid}: socket:[${ino}] ${m}`);
    const p = sink.seen.get(u.peer);
    if (!p) throw why(`is connected to socket:[${u.peer}], which no task of the dumped tree holds (a peer outside the tree)`);
    // One way: a datagram socket connected to a bound one, which sends back through sendto() only.
    const oneWay = p.entry.peer !== ino;
    if (oneWay && !(u.type === SOCK_DGRAM && p.entry.name.length && !u.name.length)) {
      throw why(`is connected one way to socket:[${u.peer}], not supported yet`);
    }
    if (oneWay) continue;
    if (u.name.length && p.entry.name.length) throw why(`and its peer socket:[${u.peer}] are both bound, not supported yet`);
  }
}

/**
 * Takes one socket's receive queue without consuming it: one buffer for a stream socket, one
 * per message otherwise. `queued` is sock_diag's count of queued bytes and `shutRd` whether
 * the socket can receive no more: a seqpacket socket then reads 0 at the end of its queue,
 * as it does for an empty message, so 0 past the last queued byte is taken as the end.
 */
export function peekQueue(fd: number, type: number, what: () => string, queued = 0, shutRd = false): Buffer[] {
  const stream = type === SOCK_STREAM;
  const eofAtEnd = type === SOCK_SEQPACKET && shutRd;
  const old = getsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF);
  const out: Buffer[] = [];
  let buf = Buffer.alloc(1 << 16);
  let off = 0;
  setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  try {
    for (;;) {
      const r = recvmsgInto(fd, buf, 0, buf.length, MSG_PEEK | MSG_DONTWAIT | (stream ? 0 : MSG_TRUNC));
      if (r.n === -EAGAIN) break;
      if (r.rights) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} has file descriptors in flight (SCM_RIGHTS), not supported yet`);
      if (r.creds) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} has messages with credentials in flight (SO_PASSCRED, SCM_CREDENTIALS), not supported yet`);
      // Restore sends the queue from unbound sockets: a sender's own address would be lost.
      // (A stream socket reports its peer's name here, which restore does keep.)
      if (type === SOCK_DGRAM && r.from.length) {
        const from = r.from[0] === 0 ? `@${r.from.subarray(1).toString()}` : r.from.subarray(0, r.from.includes(0) ? r.from.indexOf(0) : r.from.length).toString();
        throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump ${what()} has a datagram queued from the bound socket ${from}, not supported yet`);
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

/** The per-restore state of Unix sockets. */
export interface UnixRestoreState {
  /** Packets to queue, by the id of the socket whose receive queue holds them. */
  queues: Map<number, Buffer[]>;
  /** Entries by socket inode (built on first use). */
  byIno: Map<number, UnixSkEntry> | undefined;
  /** Ends made for an entry whose own open() has not come yet, by inode. */
  made: Map<number, number>;
  /** Listening and bound datagram sockets made, by their name in hex (the fds belong to the opened files). */
  listeners: Map<string, number>;
}

export function readUnixSkState(dir: string): UnixRestoreState {
  const queues = new Map<number, Buffer[]>();
  if (imageExists(dir, 'sk-queues', undefined)) {
    for (const { entry, payload } of readImage(dir, 'sk-queues', undefined)) {
      const q = queues.get(entry.idFor) ?? [];
      q.push(Buffer.from(payload.buffer, payload.byteOffset, payload.length));
      queues.set(entry.idFor, q);
    }
  }
  return { queues, byIno: undefined, made: new Map(), listeners: new Map() };
}

export function queueItems(id: number, packets: Buffer[]): PayloadItem<SkPacketEntry>[] {
  return packets.map((p) => ({ entry: create(SkPacketEntrySchema, { idFor: id, length: p.length }), payload: p }));
}

/** Sends `packets` through `sender` (whose peer is the socket they were queued on), never blocking. */
export function fillQueue(sender: number, packets: Buffer[] | undefined, type: number, what: string): void {
  if (!packets?.length) return;
  // The queue is charged to the sender's buffer: make room for all of it (and the per-packet
  // overhead); the image's own size is set afterwards.
  const need = packets.reduce((n, p) => n + p.length + 1024, 65536);
  if (getsockoptInt(sender, SOL_SOCKET, SO_SNDBUF) < need * 2) setBufSize(sender, SO_SNDBUF, need);
  for (const [i, p] of packets.entries()) {
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
