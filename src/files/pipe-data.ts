// What pipes and FIFOs share: their contents, taken at dump without consuming them, put back
// at restore, and the state that both kinds keep for one dump or one restore.
//
// Dump: the task's end is taken into stasis with pidfd_getfd; tee(2) duplicates the pipe's
// buffers into a pipe of stasis's own (tee does not consume), which stasis then reads. A
// write end cannot be tee'd from, so for a pipe the tree only writes to, a read end is opened
// through /proc/PID/fd/N. The data goes once per pipe into pipes-data.img (fifo-data.img for
// FIFOs), as CRIU's PipeDataEntry: pipe_id, bytes, capacity, then the raw bytes.
import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { PipeDataEntrySchema, type PipeDataEntry } from '../image/gen/stasis/pipe-data_pb.js';
import { imageExists, readImage, writeImage, type PayloadItem } from '../image/index.js';
import { writeFileAtomic } from '../image/image-file.js';
import {
  closeFd, fcntl, openat, pidfdGetfd, pidfdOpen, pipe2, pipeQueued, pollNow, readRaw, tee, writeRaw, SyscallError,
  F_GETPIPE_SZ, F_SETPIPE_SZ, SPLICE_F_NONBLOCK, POLLERR, POLLHUP, POLLIN, POLLOUT,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { failure } from './fail.js';
import type { Log } from '../log.js';

const AT_FDCWD = -100, O_RDONLY = 0, O_WRONLY = 1, O_ACCMODE = 3, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const O_ASYNC = 0o20000, O_DIRECT = 0o40000;
const F_GETFL = 3, F_SETFL = 4, F_GETOWN = 9;
const EAGAIN = 11;

type Item = PayloadItem<PipeDataEntry>;

/** Contents of the dump's pipes and FIFOs, once per pipe; shared by every task of one dump. */
export interface PipeDataSink {
  pipes: Map<number, Item>;
  fifos: Map<number, Item>;
  /** `pipes:ID` / `fifos:ID` -> the dev:ino the pipe_id stands for, to refuse two inodes alike in their low 32 bits. */
  inodes: Map<string, string>;
  /** Unnamed pipes by pipe_id: which ends the tree holds, and whether the pipe has readers and writers at all. */
  ends: Map<number, PipeEnds>;
  /** Pipes (`pipe:[ID]`) whose other end is outside the tree and is given back at restore (--external, then --inherit-fd). */
  external: ReadonlySet<string>;
  /** Those of `external` the tree has (written to EXTERNAL_PIPES_FILE), in the order found. */
  externalSeen: string[];
  /** The root's pid, when a pipe at its fd 0, 1 or 2 is external too (DumpOptions.stdioPipesExternal). */
  stdioOf?: number;
}

/**
 * The pipes a dump took as external: a restore that is not given them (--inherit-fd) is
 * refused, where CRIU's images, which do not say so, come back with the pipe unconnected.
 * CRIU and crit skip files they do not know. Changing its shape changes the image format.
 */
export const EXTERNAL_PIPES_FILE = 'stasis-external.json';

/** What the tree holds of one unnamed pipe. */
export interface PipeEnds {
  /** The first end seen, for messages. */
  first: TakenEnd;
  read: boolean;
  write: boolean;
  /** A read end polled POLLHUP: no task anywhere holds a write end. */
  noWriters: boolean;
  /** A write end polled POLLERR: no task anywhere holds a read end. */
  noReaders: boolean;
  /** Some end is at fd 0, 1 or 2 of PipeDataSink.stdioOf. */
  stdio: boolean;
}

export function newPipeDataSink(): PipeDataSink {
  return { pipes: new Map(), fifos: new Map(), inodes: new Map(), ends: new Map(), external: new Set(), externalSeen: [] };
}

/**
 * Refuses a pipe whose other end is held outside the tree (a shell's `tree | cat`, a
 * runtime's stdio pipes): a restore makes the pipe anew, and the tree would write into a
 * pipe nobody reads (SIGPIPE) or read one nobody writes (end of file) without a word. CRIU
 * dumps such pipes and expects its caller to give one back with --inherit-fd; stasis wants
 * that said at dump (--external pipe:[ID]), and its restore wants the pipe then
 * (EXTERNAL_PIPES_FILE), so that nobody is surprised at restore. Run once
 * every task's fds are seen. A pipe whose ends are all in the tree, and which someone
 * outside holds too, is not told apart (the kernel counts readers and writers unseen).
 */
export function checkPipePeers(sink: PipeDataSink, log?: Log): void {
  for (const [id, e] of sink.ends) {
    const key = `pipe:[${id}]`;
    const outside = !e.read && !e.noReaders ? 'read' : !e.write && !e.noWriters ? 'written' : undefined;
    if (!outside) continue;
    if (sink.external.has(key) || e.stdio) {
      sink.externalSeen.push(key);
      continue;
    }
    const would = outside === 'read' ? 'write into a new pipe that nobody reads (SIGPIPE, EPIPE)' : 'read a new pipe that nobody writes (end of file at once)';
    throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${e.first.fd} of pid ${e.first.pid}: ${key} is ${outside} by a process outside the tree, which a restore cannot reconnect: the restored tree would ${would}. If that process gives the tree a new pipe at restore, dump with --external ${key} and restore with --inherit-fd fd[N]:${key} (N: the restoring process's fd of the new pipe), as runc does with CRIU for a container's stdio`);
  }
  for (const k of sink.external) if (!sink.externalSeen.includes(k)) log?.warn(`--external ${k}: the tree holds no pipe ${k} whose other end is outside it`);
}

/** Writes pipes-data.img and fifo-data.img (when there is anything to put in them); returns the files. */
export function writePipeData(dir: string, sink: PipeDataSink): string[] {
  const out: string[] = [];
  if (sink.pipes.size) out.push(writeImage(dir, 'pipes-data', undefined, [...sink.pipes.values()]));
  if (sink.fifos.size) out.push(writeImage(dir, 'fifo-data', undefined, [...sink.fifos.values()]));
  if (sink.externalSeen.length) {
    const file = path.join(dir, EXTERNAL_PIPES_FILE);
    writeFileAtomic(file, Buffer.from(`${JSON.stringify({ pipes: sink.externalSeen })}\n`));
    out.push(file);
  }
  return out;
}

/** The pipes of an image set that its dump took as external (EXTERNAL_PIPES_FILE), by key. */
export function readExternalPipes(dir: string): string[] {
  const file = path.join(dir, EXTERNAL_PIPES_FILE);
  if (!fs.existsSync(file)) return [];
  const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { pipes?: unknown };
  if (!Array.isArray(v.pipes) || !v.pipes.every((k) => typeof k === 'string')) throw new StasisError('E_CORRUPT', `${file} holds no list of pipes`);
  return v.pipes as string[];
}

/** A pipe's contents and capacity, as the restore puts them back. */
export interface PipeData {
  size: number | undefined;
  data: Buffer;
}

/** The per-restore state of pipes and FIFOs: their contents, and what stasis made for them. */
export interface PipeRestoreState {
  pipeData: Map<number, PipeData>;
  fifoData: Map<number, PipeData>;
  /** pipe_id -> the pipe stasis made (both ends), kept until every entry is open. */
  pipes: Map<number, { read: number; write: number; readTaken: boolean; writeTaken: boolean }>;
  /** FIFO pipe_id -> an O_RDWR fd on it: a reader and a writer, so that no open blocks, kept until every entry is open. */
  fifos: Map<number, number>;
}

function readData(dir: string, kind: 'pipes-data' | 'fifo-data'): Map<number, PipeData> {
  const m = new Map<number, PipeData>();
  if (!imageExists(dir, kind, undefined)) return m;
  for (const { entry, payload } of readImage(dir, kind, undefined)) {
    if (m.has(entry.pipeId)) throw new StasisError('E_CORRUPT', `${kind}.img holds pipe ${entry.pipeId} twice`);
    if (entry.size !== undefined && entry.bytes > entry.size) {
      throw new StasisError('E_CORRUPT', `${kind}.img holds ${entry.bytes} bytes for pipe ${entry.pipeId}, whose capacity is ${entry.size}`);
    }
    m.set(entry.pipeId, { size: entry.size, data: Buffer.from(payload.buffer, payload.byteOffset, payload.length) });
  }
  return m;
}

/** Reads the pipe and FIFO contents of an image set (before any task exists). */
export function readPipeData(dir: string): PipeRestoreState {
  return { pipeData: readData(dir, 'pipes-data'), fifoData: readData(dir, 'fifo-data'), pipes: new Map(), fifos: new Map() };
}

/** Closes what the restore kept open for later entries (the pipes or the FIFOs of the state). */
export function releasePipes(m: Map<number, { read: number; write: number } | number>): void {
  for (const v of m.values()) {
    if (typeof v === 'number') closeFd(v);
    else {
      closeFd(v.read);
      closeFd(v.write);
    }
  }
  m.clear();
}

export interface TakenEnd {
  pid: number;
  fd: number;
  /** The file's status flags, from fdinfo. */
  flags: number;
  /** What it is, for messages: `pipe:[123]`, or a FIFO's path. */
  what: string;
}

/** Refuses what restore could not give back: signal-driven I/O and an owner, packet mode. */
function checkSupported(e: TakenEnd, taken: number): void {
  const why = (s: string) => new StasisError('E_UNSUPPORTED', `Cannot dump fd ${e.fd} of pid ${e.pid}: ${e.what} ${s}, not supported yet`);
  if (e.flags & O_ASYNC) throw why('has O_ASYNC set (signal-driven I/O)');
  const owner = fcntl(taken, F_GETOWN);
  if (owner !== 0) throw why(`has an owner for signals (F_SETOWN ${owner})`);
  if (e.flags & O_DIRECT) throw why('is in packet mode (O_DIRECT)');
}

/**
 * Checks one end of a frozen task's pipe or FIFO and, the first time its pipe is seen,
 * records the pipe's capacity and contents into the sink, without consuming them.
 */
export function takePipeEnd(e: TakenEnd, pipeId: number, inode: string, sink: PipeDataSink, kind: 'pipes' | 'fifos'): void {
  const into = sink[kind];
  const known = sink.inodes.get(`${kind}:${pipeId}`);
  if (known !== undefined && known !== inode) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${e.fd} of pid ${e.pid}: ${e.what} (inode ${inode}) has the same 32-bit pipe id as inode ${known}`);
  }
  sink.inodes.set(`${kind}:${pipeId}`, inode);
  const pidfd = pidfdOpen(e.pid);
  let taken = -1, reader = -1;
  try {
    taken = pidfdGetfd(pidfd, e.fd);
    checkSupported(e, taken);
    if (kind === 'pipes') noteEnd(sink, pipeId, e, taken);
    if (into.has(pipeId)) return;
    reader = (e.flags & O_ACCMODE) === O_WRONLY
      ? openat(AT_FDCWD, `/proc/${e.pid}/fd/${e.fd}`, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
      : taken;
    const size = fcntl(taken, F_GETPIPE_SZ);
    const data = peek(reader, size, e);
    into.set(pipeId, { entry: create(PipeDataEntrySchema, { pipeId, bytes: data.length, size }), payload: data });
  } catch (err) {
    throw failure('E_DUMP_FAILED', `Cannot read the contents of ${e.what} at fd ${e.fd} of pid ${e.pid}`, err);
  } finally {
    if (reader >= 0 && reader !== taken) closeFd(reader);
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

/** Records which way the tree holds pipe `pipeId` through `taken`, and whether it has readers and writers at all. */
function noteEnd(sink: PipeDataSink, pipeId: number, e: TakenEnd, taken: number): void {
  let ends = sink.ends.get(pipeId);
  if (!ends) sink.ends.set(pipeId, ends = { first: e, read: false, write: false, noWriters: false, noReaders: false, stdio: false });
  if (e.pid === sink.stdioOf && e.fd <= 2) ends.stdio = true;
  const acc = e.flags & O_ACCMODE;
  if (acc !== O_WRONLY) {
    ends.read = true;
    // The kernel's pipe_poll: POLLHUP on a read end once no writer is left (for an end pipe2 made).
    if (acc === O_RDONLY && pollNow(taken, POLLIN) & POLLHUP) ends.noWriters = true;
  }
  if (acc !== O_RDONLY) {
    ends.write = true;
    if (acc === O_WRONLY && pollNow(taken, POLLOUT) & POLLERR) ends.noReaders = true;
  }
}

/** Copies everything queued in pipe `reader` with tee into a pipe of ours and reads it from there. */
function peek(reader: number, size: number, e: TakenEnd): Buffer {
  const queued = pipeQueued(reader);
  if (queued === 0) return Buffer.alloc(0);
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  try {
    // Same capacity, same number of slots: every buffer of theirs fits in ours.
    fcntl(w, F_SETPIPE_SZ, size);
    const n = tee(reader, w, size, SPLICE_F_NONBLOCK);
    if (n !== queued) {
      throw new StasisError('E_DUMP_FAILED', `Cannot copy the contents of ${e.what} at fd ${e.fd} of pid ${e.pid}: tee copied ${n} of ${queued} bytes`);
    }
    const out = Buffer.alloc(n);
    for (let got = 0; got < n;) {
      const k = readRaw(r, out, got, n - got);
      if (k <= 0) throw new StasisError('E_DUMP_FAILED', `Cannot read back the copy of ${e.what}: ${got} of ${n} bytes`);
      got += k;
    }
    return out;
  } finally {
    closeFd(r);
    closeFd(w);
  }
}

/** Sets a fresh pipe's capacity and writes its contents back through `writeFd` (made non-blocking for it). */
export function fillPipe(writeFd: number, d: PipeData | undefined, what: string): void {
  if (!d) return;
  try {
    if (d.size !== undefined && fcntl(writeFd, F_GETPIPE_SZ) !== d.size) fcntl(writeFd, F_SETPIPE_SZ, d.size);
  } catch (err) {
    const why = err instanceof SyscallError ? err.code : String(err);
    throw new StasisError('E_RESTORE_FAILED', `Cannot give ${what} its capacity of ${d.size} bytes: F_SETPIPE_SZ failed with ${why}`, { cause: err });
  }
  if (!d.data.length) return;
  // Non-blocking: a pipe too small for its data fails here rather than hanging stasis.
  const fl = fcntl(writeFd, F_GETFL);
  fcntl(writeFd, F_SETFL, fl | O_NONBLOCK);
  try {
    for (let off = 0; off < d.data.length;) {
      const n = writeRaw(writeFd, d.data, off, d.data.length - off);
      if (n === -EAGAIN || n <= 0) {
        throw new StasisError('E_RESTORE_FAILED', `Cannot put back the contents of ${what}: it took ${off} of ${d.data.length} bytes`);
      }
      off += n;
    }
  } finally {
    fcntl(writeFd, F_SETFL, fl);
  }
}

/** Sets the status flags F_SETFL can set (O_NONBLOCK, O_APPEND) to those of the image. */
export function setStatusFlags(fd: number, flags: number): void {
  const O_APPEND = 0o2000;
  const mask = O_NONBLOCK | O_APPEND;
  const cur = fcntl(fd, F_GETFL);
  if ((cur & mask) !== (flags & mask)) fcntl(fd, F_SETFL, (cur & ~mask) | (flags & mask));
}
