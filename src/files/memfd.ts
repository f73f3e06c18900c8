// Open memfds. The memfd itself is a shared memory object (mem/shmem-dump.ts writes its
// pages once, whether fds, mappings or both hold it); an fd is one open file of it, with its
// own offset and flags, and names the object by its inode entry (memfd.img), as CRIU's
// MemfdFileEntry does. Restore reopens the object made in stasis through /proc/self/fd, which
// gives a new open file of the same memfd.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import fs from 'node:fs';
import { openat, lseek, closeFd, fcntl, memfdCreate, MFD_CLOEXEC, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const S_IFMT = 0o170000n, S_IFREG = 0o100000n;
const O_ACCMODE = 3, O_APPEND = 0o2000, O_NONBLOCK = 0o4000, O_LARGEFILE = 0o100000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100, SEEK_SET = 0, O_RDWR = 2, F_DUPFD_CLOEXEC = 1030;

/**
 * Shared anonymous memory opened as a file through /proc/PID/map_files (zdtm shmemfd): the
 * kernel names it "/dev/zero (deleted)", on the internal shmem mount that memfds are on too
 * (a regular file of that name deleted from a disk is not).
 */
function isAnonShmem(link: string, dev: bigint): boolean {
  if (link !== '/dev/zero (deleted)') return false;
  const fd = memfdCreate('stasis-probe', MFD_CLOEXEC);
  try {
    return fs.fstatSync(fd, { bigint: true }).dev === dev;
  } finally {
    closeFd(fd);
  }
}

export const memfd = {
  name: 'memfd',
  type: FdTypes.MEMFD,
  detect: (p) => (p.stat.mode & S_IFMT) === S_IFREG && (p.link.startsWith('/memfd:') || isAnonShmem(p.link, p.stat.dev)),
  dump: (p, ctx, id) => {
    if (!ctx.memfds) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is a memfd`);
    const inodeId = ctx.memfds.addMemfdFd(p.pid, p.fd, p.stat.ino, !p.link.startsWith('/memfd:'));
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
      // The open file memfd_create() made is no writer to the kernel (a file opened O_RDWR
      // through /proc is, and an execveat() of the memfd then fails with ETXTBSY): an O_RDWR
      // fd of the task takes it, the first one of each memfd (the others share no offset with it).
      const plain = (m.flags & (O_ACCMODE | O_APPEND | O_NONBLOCK)) === O_RDWR;
      fd = plain && ctx.memfds?.takeCreated?.(m.inodeId)
        ? fcntl(obj, F_DUPFD_CLOEXEC, 0)
        : openat(AT_FDCWD, `/proc/self/fd/${obj}`, (m.flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_LARGEFILE)) | O_CLOEXEC);
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
