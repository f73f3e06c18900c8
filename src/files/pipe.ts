// Unnamed pipes. Each end is a file object of its own (PipeEntry: pipe_id = the pipe's inode,
// its flags); the pipe's contents go once into pipes-data.img (pipe-data.ts). Restore makes
// one pipe per pipe_id in stasis, puts its capacity and contents back, and gives each entry
// an end: pipe2's own ends to the entries that were pipe2's (no O_LARGEFILE in their flags,
// as CRIU tells them apart), an end reopened through /proc/self/fd to the others (ends
// reopened by the task, O_RDWR ones). Both ends stay in stasis until every entry is open, so
// an end whose peer no task holds still gets its contents.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { closeFd, fcntl, openat, pipe2 } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind, RestoreFileCtx } from './kind.js';
import { emptyFown } from './reg.js';
import { fillPipe, releasePipes, setStatusFlags, takePipeEnd } from './pipe-data.js';
import { failure } from './fail.js';
import { reopenInheritedPipe } from './inherit.js';

const AT_FDCWD = -100, O_RDONLY = 0, O_WRONLY = 1, O_ACCMODE = 3, O_NONBLOCK = 0o4000;
const O_LARGEFILE = 0o100000, O_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;

/** The pipe_id of an inode: CRIU's images keep 32 bits of it. */
export const pipeIdOf = (ino: bigint) => Number(ino & 0xffffffffn);

function endFor(e: FileEntry, ctx: RestoreFileCtx): number {
  const pe = e.pipe!;
  let made = ctx.pipes.pipes.get(pe.pipeId);
  if (!made) {
    const [read, write] = pipe2(O_CLOEXEC);
    made = { read, write, readTaken: false, writeTaken: false };
    ctx.pipes.pipes.set(pe.pipeId, made);
    fillPipe(write, ctx.pipes.pipeData.get(pe.pipeId), `pipe ${pe.pipeId}`);
  }
  const acc = pe.flags & O_ACCMODE;
  const own = !(pe.flags & O_LARGEFILE);
  if (own && acc === O_RDONLY && !made.readTaken) {
    made.readTaken = true;
    return fcntl(made.read, F_DUPFD_CLOEXEC, 0);
  }
  if (own && acc === O_WRONLY && !made.writeTaken) {
    made.writeTaken = true;
    return fcntl(made.write, F_DUPFD_CLOEXEC, 0);
  }
  // A pipe's inode opens like a FIFO's, without waiting for a peer.
  const base = acc === O_WRONLY ? made.write : made.read;
  return openat(AT_FDCWD, `/proc/self/fd/${base}`, acc | (pe.flags & O_NONBLOCK) | O_CLOEXEC);
}

export const pipe = {
  name: 'pipe',
  type: FdTypes.PIPE,
  detect: (p) => /^pipe:\[\d+\]$/.test(p.link),
  dump: (p, ctx, id) => {
    const pipeId = pipeIdOf(p.stat.ino);
    takePipeEnd({ pid: p.pid, fd: p.fd, flags: p.info.flags, what: p.link }, pipeId, `${p.stat.dev}:${p.stat.ino}`,
      ctx.pipeData, 'pipes');
    return create(FileEntrySchema, {
      type: FdTypes.PIPE, id, pipe: { id, pipeId, flags: p.info.flags, fown: emptyFown() },
    });
  },
  open: (e, ctx) => {
    if (!e.pipe) throw new StasisError('E_CORRUPT', `File ${e.id} is a pipe without its entry`);
    let fd = -1;
    try {
      fd = endFor(e, ctx);
      setStatusFlags(fd, e.pipe.flags);
    } catch (err) {
      if (fd >= 0) closeFd(fd);
      throw failure('E_RESTORE_FAILED', `Cannot make pipe ${e.pipe.pipeId} (file ${e.id})`, err);
    }
    return { status: 'done', fd };
  },
  inheritKey: (e) => (e.pipe ? `pipe:[${e.pipe.pipeId}]` : undefined),
  // Its end as the image had it, on the caller's pipe; the image's contents of the pipe are not written (CRIU's rule).
  openInherited: (e, fd, key) => {
    const end = reopenInheritedPipe(e, fd, key);
    try {
      setStatusFlags(end, e.pipe!.flags);
    } catch (err) {
      closeFd(end);
      throw failure('E_RESTORE_FAILED', `Cannot set the flags of ${key} (file ${e.id})`, err);
    }
    return end;
  },
  finish: (ctx) => releasePipes(ctx.pipes.pipes),
} satisfies FileKind;
