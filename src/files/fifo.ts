// FIFOs (named pipes), as CRIU keeps them: a FIFO entry (pipe_id = the FIFO's inode) naming a
// REG entry with the path and the open flags; the contents once per FIFO in fifo-data.img.
// Opening a FIFO read-only or write-only waits for the other side, so restore first opens it
// O_RDWR (both sides at once, which never waits), puts the contents back through that fd, and
// opens each entry through /proc/self/fd of it with the entry's own flags. The O_RDWR fd stays
// until every entry is open; the contents then live on in the entries' fds.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { closeFd, openat } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { pathKey } from './inherit.js';
import type { FileKind } from './kind.js';
import { emptyFown, keepIfGone } from './reg.js';
import { fillPipe, releasePipes, setStatusFlags, takePipeEnd } from './pipe-data.js';
import { pipeIdOf } from './pipe.js';
import { failure } from './fail.js';

const AT_FDCWD = -100, O_RDWR = 2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000;
const S_IFMT = 0o170000n, S_IFIFO = 0o010000n;

export const fifo = {
  name: 'FIFO',
  type: FdTypes.FIFO,
  detect: (p) => p.link.startsWith('/') && (p.stat.mode & S_IFMT) === S_IFIFO,
  dump: (p, ctx, id) => {
    const pipeId = pipeIdOf(p.stat.ino);
    // Reopened through the root's mount namespace at restore: one on a mount of a namespace below it would come back on another mount.
    if (ctx.ghosts?.mntRoots.has(p.info.mntId)) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: it is the FIFO ${p.link} on mount ${p.info.mntId} of a mount namespace below the tree's root's, which stasis cannot reopen there yet`);
    takePipeEnd({ pid: p.pid, fd: p.fd, flags: p.info.flags, what: `FIFO ${p.link}` }, pipeId, `${p.stat.dev}:${p.stat.ino}`,
      ctx.pipeData, 'fifos');
    const regfId = ctx.ids.fresh();
    // An unlinked FIFO is made again as a ghost: its REG entry is remapped.
    const { path, linked } = keepIfGone(p, ctx, regfId);
    return [
      ...linked,
      create(FileEntrySchema, {
        type: FdTypes.REG, id: regfId,
        reg: { id: regfId, flags: p.info.flags, pos: 0n, fown: emptyFown(), name: path, mode: Number(p.stat.mode) },
      }),
      create(FileEntrySchema, { type: FdTypes.FIFO, id, fifo: { id, pipeId, regfId } }),
    ];
  },
  open: (e, ctx) => {
    const fe = e.fifo;
    if (!fe) throw new StasisError('E_CORRUPT', `File ${e.id} is a FIFO without its entry`);
    const regf = ctx.files.get(fe.regfId ?? fe.id);
    const r = regf?.reg;
    if (!regf || !r) throw new StasisError('E_CORRUPT', `FIFO ${e.id} names file ${fe.regfId ?? fe.id}, which is not a REG entry of files.img`);
    const name = ctx.ghosts?.pathOf(regf, ctx.files) ?? `${ctx.root ?? ''}${r.name}`;
    let both = ctx.pipes.fifos.get(fe.pipeId);
    let fd = -1;
    try {
      if (both === undefined) {
        both = openat(AT_FDCWD, name, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ctx.pipes.fifos.set(fe.pipeId, both);
        if (!fs.fstatSync(both).isFIFO()) throw new StasisError('E_RESTORE_FAILED', `Cannot restore FIFO ${r.name} (file ${e.id}): it is no longer a FIFO`);
        fillPipe(both, ctx.pipes.fifoData.get(fe.pipeId), `FIFO ${r.name}`);
      }
      const flags = (r.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC;
      fd = openat(AT_FDCWD, `/proc/self/fd/${both}`, flags);
      setStatusFlags(fd, r.flags);
    } catch (err) {
      if (fd >= 0) closeFd(fd);
      throw failure('E_RESTORE_FAILED', `Cannot reopen FIFO ${r.name} (file ${e.id})`, err);
    }
    return { status: 'done', fd };
  },
  // CRIU opens a FIFO by its REG entry's path (open_path), and so names it.
  inheritKey: (e, ctx) => {
    const r = ctx.files.get(e.fifo?.regfId ?? e.id)?.reg;
    return r ? pathKey(r.name) : undefined;
  },
  finish: (ctx) => releasePipes(ctx.pipes.fifos),
} satisfies FileKind;
