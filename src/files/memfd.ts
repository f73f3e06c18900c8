// Open memfds. The memfd itself is a shared memory object (mem/shmem-dump.ts writes its
// pages once, whether fds, mappings or both hold it); an fd is one open file of it, with its
// own offset and flags, and names the object by its inode entry (memfd.img), as CRIU's
// MemfdFileEntry does. Restore reopens the object made in stasis through /proc/self/fd, which
// gives a new open file of the same memfd.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { openat, lseek, closeFd, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const S_IFMT = 0o170000n, S_IFREG = 0o100000n;
const O_ACCMODE = 3, O_APPEND = 0o2000, O_NONBLOCK = 0o4000, O_LARGEFILE = 0o100000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100, SEEK_SET = 0;

export const memfd = {
  name: 'memfd',
  type: FdTypes.MEMFD,
  detect: (p) => p.link.startsWith('/memfd:') && (p.stat.mode & S_IFMT) === S_IFREG,
  dump: (p, ctx, id) => {
    if (!ctx.memfds) throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is a memfd`);
    const inodeId = ctx.memfds.addMemfdFd(p.pid, p.fd, p.stat.ino);
    return create(FileEntrySchema, {
      type: FdTypes.MEMFD, id,
      memfd: { id, flags: p.info.flags, pos: p.info.pos, fown: emptyFown(), inodeId },
    });
  },
  open: (e, ctx) => {
    const m = e.memfd;
    if (!m) throw new StasisError('E_CORRUPT', `File ${e.id} is a memfd without its entry`);
    const obj = ctx.memfds?.fdOfInode(m.inodeId);
    if (obj === undefined) throw new StasisError('E_CORRUPT', `Memfd file ${e.id} names inode ${m.inodeId}, which memfd.img lacks`);
    let fd: number;
    try {
      fd = openat(AT_FDCWD, `/proc/self/fd/${obj}`, (m.flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_LARGEFILE)) | O_CLOEXEC);
    } catch (err) {
      const why = err instanceof SyscallError ? err.code : String(err);
      throw new StasisError('E_RESTORE_FAILED', `Cannot reopen memfd file ${e.id}: ${why}`, { cause: err });
    }
    try {
      if (m.pos > 0n) lseek(fd, m.pos, SEEK_SET);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return { status: 'done', fd };
  },
} satisfies FileKind;
