// The socket options every kind of socket keeps in its SkOptsEntry: buffer sizes and
// send/receive timeouts, read through an fd stasis took from the task and set again on the
// socket made at restore. Kinds add their own options around these.
import { isFieldSet } from '@bufbuild/protobuf';
import { SkOptsEntrySchema, type SkOptsEntry } from '../image/gen/stasis/sk-opts_pb.js';
import { StasisError } from '../errors.js';
import {
  attachSocketFilter, getSocketFilter, getsockoptInt, getsockoptString, getsockoptTimeval, setsockoptInt, setsockoptString, setsockoptTimeval,
  SOL_SOCKET, SO_BINDTODEVICE, SO_DONTROUTE, SO_MARK, SO_NO_CHECK, SO_OOBINLINE, SO_PASSCRED, SO_PASSSEC, SO_PRIORITY,
  SO_RCVBUF, SO_RCVBUFFORCE, SO_RCVLOWAT, SO_RCVTIMEO, SO_SNDBUF, SO_SNDBUFFORCE, SO_SNDTIMEO, SO_DOMAIN, SO_BUF_LOCK, SyscallError, closeFd, fcntl, withTaskFd,
} from '../sys/index.js';
import type { FdTypes, FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { FileKind } from './kind.js';
import { setStatusFlags } from './pipe-data.js';
import { failure } from './fail.js';

/** Buffer sizes (as getsockopt reports them: doubled) and timeouts of a socket. */
export function bufsAndTimeouts(fd: number) {
  const [sndSec, sndUsec] = getsockoptTimeval(fd, SO_SNDTIMEO);
  const [rcvSec, rcvUsec] = getsockoptTimeval(fd, SO_RCVTIMEO);
  return {
    soSndbuf: getsockoptInt(fd, SOL_SOCKET, SO_SNDBUF), soRcvbuf: getsockoptInt(fd, SOL_SOCKET, SO_RCVBUF),
    soSndTmoSec: sndSec, soSndTmoUsec: sndUsec, soRcvTmoSec: rcvSec, soRcvTmoUsec: rcvUsec,
  };
}

export const SNDBUF_LOCK = 1, RCVBUF_LOCK = 2;

/** SO_BUF_LOCK (Linux 5.14): which buffer sizes the task set itself; without it, both. */
export function bufLock(fd: number): number {
  try {
    return getsockoptInt(fd, SOL_SOCKET, SO_BUF_LOCK);
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'ENOPROTOOPT') return SNDBUF_LOCK | RCVBUF_LOCK;
    throw err;
  }
}

/**
 * Only the buffer sizes the task set: setting one locks it (an accepted connection would
 * inherit the lock instead of the kernel's autotuning). setsockopt doubles what it is given.
 * An image without so_buf_lock (CRIU's before it) gets both set, as CRIU does.
 */
export function setLockedBufSizes(fd: number, o: SkOptsEntry): void {
  const lock = optOf(o, 'soBufLock') ?? SNDBUF_LOCK | RCVBUF_LOCK;
  if (lock & SNDBUF_LOCK) setBufSize(fd, SO_SNDBUF, o.soSndbuf >> 1);
  if (lock & RCVBUF_LOCK) setBufSize(fd, SO_RCVBUF, o.soRcvbuf >> 1);
}

/** The options every socket kind keeps (CRIU's dump_socket_opts): sizes, timeouts, the general ones, which sizes the task set. */
export function commonOpts(fd: number) {
  return { ...bufsAndTimeouts(fd), ...generalOpts(fd), soBufLock: bufLock(fd) };
}

/** The options of commonOpts() on a socket made at restore. */
export function setCommonOpts(fd: number, o: SkOptsEntry): void {
  setLockedBufSizes(fd, o);
  setTimeouts(fd, o);
  setGeneralOpts(fd, o);
}

/** The timeouts of an image's options, where they were set. */
export function setTimeouts(fd: number, o: { soSndTmoSec: bigint; soSndTmoUsec: bigint; soRcvTmoSec: bigint; soRcvTmoUsec: bigint }): void {
  if (o.soSndTmoSec || o.soSndTmoUsec) setsockoptTimeval(fd, SO_SNDTIMEO, o.soSndTmoSec, o.soSndTmoUsec);
  if (o.soRcvTmoSec || o.soRcvTmoUsec) setsockoptTimeval(fd, SO_RCVTIMEO, o.soRcvTmoSec, o.soRcvTmoUsec);
}

/**
 * Sets a buffer size (SO_SNDBUF or SO_RCVBUF, `value` as setsockopt takes it: half what
 * getsockopt reports). The FORCE variant passes net.core.wmem_max / rmem_max; without
 * CAP_NET_ADMIN the plain option is used, capped by the kernel at that maximum.
 */
export function setBufSize(fd: number, opt: typeof SO_SNDBUF | typeof SO_RCVBUF, value: number): void {
  try {
    setsockoptInt(fd, SOL_SOCKET, opt === SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, value);
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'EPERM')) throw err;
    setsockoptInt(fd, SOL_SOCKET, opt, value);
  }
}

/** An option the image holds (proto2 optional fields read as their default when absent). */
export function optOf(o: SkOptsEntry, name: keyof typeof SkOptsEntrySchema.field): number | undefined {
  if (!isFieldSet(o, SkOptsEntrySchema.field[name])) return undefined;
  return Number(o[name as keyof SkOptsEntry]);
}

/** Sets `opt` to `want` where a fresh socket has another value (a value set equal to the default is not told apart). */
export function setIfOther(fd: number, level: number, opt: number, want: number | undefined): void {
  if (want === undefined || getsockoptInt(fd, level, opt) === want) return;
  setsockoptInt(fd, level, opt, want);
}

/**
 * The options of SOL_SOCKET every socket has (CRIU's dump_socket_opts): priority, receive low
 * mark, mark, SO_PASSCRED, SO_PASSSEC, SO_DONTROUTE, SO_NO_CHECK, SO_OOBINLINE, the bound
 * device (SO_BINDTODEVICE, its name: an interface index means nothing on another machine).
 */
export function generalOpts(fd: number) {
  const int = (opt: number) => getsockoptInt(fd, SOL_SOCKET, opt);
  // SO_PASSCRED and SO_PASSSEC are of Unix and netlink sockets only since Linux 6.x (EOPNOTSUPP).
  const flag = (opt: number) => {
    try {
      return int(opt) !== 0;
    } catch (err) {
      if (err instanceof SyscallError && (err.code === 'EOPNOTSUPP' || err.code === 'ENOTSUP' || err.code === 'ENOPROTOOPT')) return undefined;
      throw err;
    }
  };
  const dev = getsockoptString(fd, SOL_SOCKET, SO_BINDTODEVICE);
  const passcred = flag(SO_PASSCRED), passsec = flag(SO_PASSSEC);
  return {
    soPriority: int(SO_PRIORITY), soRcvlowat: int(SO_RCVLOWAT), soMark: int(SO_MARK) >>> 0,
    ...(passcred !== undefined ? { soPasscred: passcred } : {}), ...(passsec !== undefined ? { soPasssec: passsec } : {}),
    soDontroute: int(SO_DONTROUTE) !== 0, soNoCheck: int(SO_NO_CHECK) !== 0, soOobinline: int(SO_OOBINLINE) !== 0 ? 1 : 0,
    ...(dev ? { soBoundDev: dev } : {}),
    soFilter: filterOf(fd),
  };
}

/** The classic BPF filter attached (SO_GET_FILTER), each instruction as CRIU keeps it: a little-endian u64. */
/**
 * A classic BPF instruction (struct sock_filter: u16 code, u8 jt, u8 jf, u32 k) as CRIU keeps
 * it in so_filter: code << 48 | jt << 40 | jf << 32 | k (CRIU's sockets.c, encode_filter), not the
 * struct's bytes.
 */
export function encodeFilterInsn(b: Buffer): bigint {
  return (BigInt(b.readUInt16LE(0)) << 48n) | (BigInt(b[2]!) << 40n) | (BigInt(b[3]!) << 32n) | BigInt(b.readUInt32LE(4));
}

/** The struct sock_filter of an so_filter word. */
export function decodeFilterInsn(w: bigint): Buffer {
  const v = BigInt.asUintN(64, w);
  const b = Buffer.alloc(8);
  b.writeUInt16LE(Number(v >> 48n), 0);
  b[2] = Number((v >> 40n) & 0xffn);
  b[3] = Number((v >> 32n) & 0xffn);
  b.writeUInt32LE(Number(v & 0xffffffffn), 4);
  return b;
}

function filterOf(fd: number): bigint[] {
  try {
    return getSocketFilter(fd).map(encodeFilterInsn);
  } catch (err) {
    // An eBPF program (SO_ATTACH_BPF) has no classic form to read back.
    if (err instanceof SyscallError && err.code === 'EACCES') throw new StasisError('E_UNSUPPORTED', 'it has an eBPF socket filter (SO_ATTACH_BPF), which stasis cannot read back');
    throw err;
  }
}

/** The options of generalOpts() on a socket made at restore, each where it differs from a fresh one's. */
export function setGeneralOpts(fd: number, o: SkOptsEntry): void {
  const bool = (name: keyof typeof SkOptsEntrySchema.field) => {
    const v = optOf(o, name);
    return v === undefined ? undefined : v ? 1 : 0;
  };
  setIfOther(fd, SOL_SOCKET, SO_PRIORITY, optOf(o, 'soPriority'));
  setIfOther(fd, SOL_SOCKET, SO_RCVLOWAT, optOf(o, 'soRcvlowat'));
  const mark = optOf(o, 'soMark');
  if (mark !== undefined && mark !== 0) setsockoptInt(fd, SOL_SOCKET, SO_MARK, mark | 0);
  setIfOther(fd, SOL_SOCKET, SO_PASSCRED, bool('soPasscred'));
  setIfOther(fd, SOL_SOCKET, SO_PASSSEC, bool('soPasssec'));
  setIfOther(fd, SOL_SOCKET, SO_DONTROUTE, bool('soDontroute'));
  setIfOther(fd, SOL_SOCKET, SO_NO_CHECK, bool('soNoCheck'));
  setIfOther(fd, SOL_SOCKET, SO_OOBINLINE, bool('soOobinline'));
  if (o.soBoundDev) setsockoptString(fd, SOL_SOCKET, SO_BINDTODEVICE, o.soBoundDev);
  if (o.soFilter.length) {
    attachSocketFilter(fd, o.soFilter.map(decodeFilterInsn));
  }
}

/** The address family of socket fd `fd` of `pid` (SO_DOMAIN), or undefined when it is gone or not a socket. */
export function socketFamily(pid: number, fd: number): number | undefined {
  try {
    return withTaskFd(pid, fd, (mine) => getsockoptInt(mine, SOL_SOCKET, SO_DOMAIN));
  } catch {
    return undefined;
  }
}

/** Why a socket taken from a task cannot be restored for its signal-driven I/O or owner, or undefined. */
export function ownerRefusal(taken: number, statusFlags: number): string | undefined {
  const O_ASYNC = 0o20000, F_GETOWN = 9;
  if (statusFlags & O_ASYNC) return 'has O_ASYNC set (signal-driven I/O), not supported yet';
  const owner = fcntl(taken, F_GETOWN);
  if (owner !== 0) return `has an owner for signals (F_SETOWN ${owner}), not supported yet`;
  return undefined;
}

/**
 * A socket kind told by its family alone (netlink, packet): at restore `make` builds the
 * socket from its entry, which then gets its common options and status flags; a socket that
 * fails on the way is closed, and the error names the file by `what`.
 */
export function familySocketKind<K extends { opts?: SkOptsEntry | undefined; flags: number }>(d: {
  name: string;
  type: FdTypes;
  family: number;
  dump: FileKind['dump'];
  entryOf: (e: FileEntry) => K | undefined;
  make: (fd: number, k: K) => void;
  create: (k: K) => number;
  what: (k: K) => string;
}): FileKind {
  const build = (k: K): number => {
    const fd = d.create(k);
    try {
      d.make(fd, k);
      setCommonOpts(fd, k.opts!);
      setStatusFlags(fd, k.flags);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return fd;
  };
  return {
    name: d.name,
    type: d.type,
    detect: (p) => /^socket:\[\d+\]$/.test(p.link) && socketFamily(p.pid, p.fd) === d.family,
    dump: d.dump,
    open: (e, ctx) => {
      const k = d.entryOf(e);
      if (!k?.opts) throw new StasisError('E_CORRUPT', `File ${e.id} is a ${d.name} without its entry`);
      try {
        // A socket of the tree's own network namespace is made in the new one (and bound there).
        return { status: 'done', fd: ctx.tcp.inNetns(() => build(k)) };
      } catch (err) {
        throw failure('E_RESTORE_FAILED', `Cannot restore ${d.name} ${e.id} (${d.what(k)})`, err);
      }
    },
  };
}
