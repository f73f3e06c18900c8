// Regular files, directories and character devices (/dev/null, /dev/zero, ...): reopened by
// path with the flags they had, at the offset they had.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { FownEntrySchema } from '../image/gen/stasis/fown_pb.js';
import { openat, lseek, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind } from './kind.js';
import { isTtyRdev } from './tty.js';

const AT_FDCWD = -100;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_CLOEXEC = 0o2000000;
const S_IFMT = 0o170000n, S_IFREG = 0o100000n, S_IFDIR = 0o040000n, S_IFCHR = 0o020000n, S_IFBLK = 0o060000n;
const SEEK_SET = 0;

export const emptyFown = () => create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });

export const reg = {
  name: 'regular file',
  type: FdTypes.REG,
  detect: (p) => {
    if (!p.link.startsWith('/')) return false;
    const fmt = p.stat.mode & S_IFMT;
    if (fmt === S_IFCHR) return !isTtyRdev(p.stat.rdev);
    return fmt === S_IFREG || fmt === S_IFDIR || fmt === S_IFBLK;
  },
  dump: (p, ctx, id) => {
    const isReg = (p.stat.mode & S_IFMT) === S_IFREG;
    const { path, gone } = whereIs(p);
    if (gone) {
      if (!isReg) {
        throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${path} was deleted or replaced, and only a regular file's contents can be kept`);
      }
      if (!ctx.ghosts) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is an unlinked file`);
      ctx.ghosts.add(p, id, path);
    }
    return create(FileEntrySchema, {
      type: FdTypes.REG,
      id,
      reg: {
        id, flags: p.info.flags, pos: p.info.pos, fown: emptyFown(), name: path, mntId: p.info.mntId,
        ...(isReg ? { size: p.stat.size } : {}), mode: Number(p.stat.mode),
      },
    });
  },
  open: (e, ctx) => {
    const r = e.reg;
    if (!r) throw new StasisError('E_CORRUPT', `File ${e.id} is a regular file without its entry`);
    const flags = (r.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC;
    const ghost = ctx.ghosts?.ghostOf(e.id);
    const name = ghost === undefined ? r.name : ctx.ghosts!.pathFor(ghost, e.id, r.name);
    let fd: number;
    try {
      fd = openat(AT_FDCWD, name, flags);
    } catch (err) {
      const why = err instanceof SyscallError ? err.code : String(err);
      throw new StasisError('E_RESTORE_FAILED', `Cannot reopen ${r.name} (file ${e.id}): ${why}`, { cause: err });
    }
    if (r.size !== undefined && r.pos > 0n) lseek(fd, r.pos, SEEK_SET);
    else if (r.pos > 0n) {
      try {
        lseek(fd, r.pos, SEEK_SET);
      } catch {
        /* devices without a position */
      }
    }
    return { status: 'done', fd };
  },
} satisfies FileKind;

const DELETED = ' (deleted)';

/**
 * The path of the file behind an fd, and whether that path still leads to it: not when the
 * file was unlinked (the link ends in ` (deleted)`) or another file now has its name.
 */
function whereIs(p: FdProbe): { path: string; gone: boolean } {
  if (p.link.endsWith(DELETED)) {
    // A file really named `x (deleted)`, still there, looks the same: stat tells.
    if (sameInode(p.link, p)) return { path: p.link, gone: false };
    return { path: p.link.slice(0, -DELETED.length), gone: true };
  }
  return { path: p.link, gone: p.stat.nlink === 0n || !sameInode(p.link, p) };
}

function sameInode(path: string, p: FdProbe): boolean {
  try {
    const st = fs.statSync(path, { bigint: true });
    return st.dev === p.stat.dev && st.ino === p.stat.ino;
  } catch {
    return false;
  }
}
