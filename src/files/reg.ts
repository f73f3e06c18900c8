// Regular files, directories and character devices (/dev/null, /dev/zero, ...): reopened by
// path with the flags they had, at the offset they had.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { RegFileEntrySchema } from '../image/gen/stasis/regfile_pb.js';
import { FownEntrySchema } from '../image/gen/stasis/fown_pb.js';
import { openat, lseek, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
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
  dump: (p, _ctx, id) => {
    if (p.stat.nlink === 0n && (p.stat.mode & S_IFMT) === S_IFREG) {
      throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is an unlinked file, not supported yet`);
    }
    const isReg = (p.stat.mode & S_IFMT) === S_IFREG;
    return create(FileEntrySchema, {
      type: FdTypes.REG,
      id,
      reg: {
        id, flags: p.info.flags, pos: p.info.pos, fown: emptyFown(), name: p.link, mntId: p.info.mntId,
        ...(isReg ? { size: p.stat.size } : {}), mode: Number(p.stat.mode),
      },
    });
  },
  open: (e) => {
    const r = e.reg;
    if (!r) throw new StasisError('E_CORRUPT', `File ${e.id} is a regular file without its entry`);
    const flags = (r.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC;
    let fd: number;
    try {
      fd = openat(AT_FDCWD, r.name, flags);
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
