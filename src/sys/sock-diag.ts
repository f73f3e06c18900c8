// The kernel's view of every Unix socket of this network namespace, through NETLINK_SOCK_DIAG
// (net/unix/diag.c; what `ss -x` and CRIU read): inode, type, state, bound name and file,
// peer inode, queue lengths and shutdown state. /proc/net/unix has no peers, so no
// connections; the netlink dump does.
import { addressOf, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { AF_NETLINK, AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, socket } from './sockets.js';

const NETLINK_SOCK_DIAG = 4, SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_ERROR = 2, NLMSG_DONE = 3;
const UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_ICONS = 8, UDIAG_SHOW_RQLEN = 0x10;
const UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_ICONS = 3, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;

/** One Unix socket as sock_diag reports it. */
export interface UnixDiag {
  ino: number;
  type: number;
  state: number;
  /** The bound address: a path (without a NUL), or an abstract name starting with a NUL; empty when unbound. */
  name: Buffer;
  /** The inode and device of the file a path-bound socket was bound to. */
  vfs?: { ino: number; dev: number };
  /** The peer's inode: undefined when it has none, 0 when its peer has been closed (or is not accepted yet). */
  peer?: number;
  /** A listener's connections not accepted yet: the inodes of their client ends. */
  icons: number[];
  /** Queued bytes (a listener: queued connections) and sent bytes in flight (a listener: its backlog). */
  rqueue: number;
  wqueue: number;
  /** sk_shutdown: 1 receiving side closed, 2 sending side closed. */
  shutdown: number;
}

/** Every Unix socket of the caller's network namespace, by inode. */
export function unixSockets(): Map<number, UnixDiag> {
  const req = Buffer.alloc(24);
  req.writeUInt8(AF_UNIX, 0);
  req.writeUInt32LE(0xffffffff, 4); // every state
  req.writeUInt32LE(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN, 12);
  req.writeUInt32LE(0xffffffff, 16);
  req.writeUInt32LE(0xffffffff, 20);
  const out = new Map<number, UnixDiag>();
  sockDiagDump(req, 'unix socket dump', (m) => {
    const d = parseMsg(m);
    out.set(d.ino, d);
  });
  return out;
}

/**
 * A SOCK_DIAG_BY_FAMILY dump of the caller's network namespace: sends `body` (the family's
 * request after the netlink header) and gives each reply's message to `onMsg`.
 */
export function sockDiagDump(body: Buffer, what: string, onMsg: (m: Buffer) => void): void {
  const fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  try {
    const req = Buffer.alloc(16 + body.length);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(1, 8);
    body.copy(req, 16);
    const w = syscallRaw('write', fd, addressOf(req), req.length);
    if (w < 0n) throw new SyscallError('write', Number(-w), 'sock_diag request');
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const r = syscallRaw('read', fd, addressOf(buf), buf.length);
      if (r < 0n) throw new SyscallError('read', Number(-r), 'sock_diag reply');
      const n = Number(r);
      for (let at = 0; at + 16 <= n;) {
        const len = buf.readUInt32LE(at), type = buf.readUInt16LE(at + 4);
        if (len < 16 || at + len > n) throw new SyscallError('read', 5, `a sock_diag message of ${len} bytes`);
        if (type === NLMSG_DONE) return;
        if (type === NLMSG_ERROR) throw new SyscallError('sock_diag', -buf.readInt32LE(at + 16), what);
        if (type === SOCK_DIAG_BY_FAMILY) onMsg(buf.subarray(at + 16, at + len));
        at += (len + 3) & ~3;
      }
    }
  } finally {
    syscallRaw('close', fd);
  }
}

/** struct unix_diag_msg (16 bytes), then its attributes. */
function parseMsg(m: Buffer): UnixDiag {
  const d: UnixDiag = {
    type: m.readUInt8(1), state: m.readUInt8(2), ino: m.readUInt32LE(4), name: Buffer.alloc(0),
    icons: [], rqueue: 0, wqueue: 0, shutdown: 0,
  };
  for (let at = 16; at + 4 <= m.length;) {
    const len = m.readUInt16LE(at), type = m.readUInt16LE(at + 2);
    if (len < 4) break;
    const v = m.subarray(at + 4, at + len);
    if (type === UNIX_DIAG_NAME) {
      // A path keeps the NUL that bind() was given with it: the name is the path alone.
      const end = v.length && v[0] !== 0 && v.includes(0) ? v.indexOf(0) : v.length;
      d.name = Buffer.from(v.subarray(0, end));
    }
    else if (type === UNIX_DIAG_VFS && v.length >= 8) d.vfs = { ino: v.readUInt32LE(0), dev: v.readUInt32LE(4) };
    else if (type === UNIX_DIAG_PEER && v.length >= 4) d.peer = v.readUInt32LE(0);
    else if (type === UNIX_DIAG_ICONS) for (let i = 0; i + 4 <= v.length; i += 4) d.icons.push(v.readUInt32LE(i));
    else if (type === UNIX_DIAG_RQLEN && v.length >= 8) {
      d.rqueue = v.readUInt32LE(0);
      d.wqueue = v.readUInt32LE(4);
    } else if (type === UNIX_DIAG_SHUTDOWN && v.length >= 1) d.shutdown = v.readUInt8(0);
    at += (len + 3) & ~3;
  }
  return d;
}
