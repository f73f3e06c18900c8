// Regular files, directories and character devices (/dev/null, /dev/zero, ...): reopened by
// path with the flags they had, at the offset they had.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { FownEntrySchema } from '../image/gen/stasis/fown_pb.js';
import { openat, lseek, SyscallError, hugetlbfsPageSize } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe, FileKind } from './kind.js';
import type { GhostDumper, GhostSource } from './ghost.js';
import { isTtyRdev } from './tty.js';
import { pathKey } from './inherit.js';

const AT_FDCWD = -100;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_CLOEXEC = 0o2000000, O_TMPFILE = 0o20200000;
const S_IFMT = 0o170000n, S_IFREG = 0o100000n, S_IFDIR = 0o040000n, S_IFCHR = 0o020000n, S_IFBLK = 0o060000n, S_IFLNK = 0o120000n;
const SEEK_SET = 0;

export const emptyFown = () => create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });

export const reg = {
  name: 'regular file',
  type: FdTypes.REG,
  detect: (p) => {
    if (!p.link.startsWith('/')) return false;
    const fmt = p.stat.mode & S_IFMT;
    if (fmt === S_IFCHR) return !isTtyRdev(p.stat.rdev);
    // A symlink itself: open with O_PATH | O_NOFOLLOW.
    return fmt === S_IFREG || fmt === S_IFDIR || fmt === S_IFBLK || fmt === S_IFLNK;
  },
  // A mnt_id only with the mount images (mountpoints-N.img) that give it a meaning: CRIU 4.2
  // looks up a remapped file's mount by it and fails to link its ghost back.
  dump: (p, ctx, id) => {
    const isReg = (p.stat.mode & S_IFMT) === S_IFREG;
    // Shared hugetlb memory opened through map_files, or a file of a hugetlbfs mount: the
    // file would come back with small pages, or as a copy, not the object its mappings share.
    if (isReg && hugetlbfsPageSize(`/proc/${p.pid}/fd/${p.fd}`)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is a hugetlbfs file, not supported yet (only memfds made with MFD_HUGETLB are)`);
    }
    // In a mount namespace of the tree's own, the file's mount must be one of it (CRIU's lookup_mnt_id).
    if (ctx.mnt && !ctx.mnt.ids.has(p.info.mntId)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is on mount ${p.info.mntId}, which is not in the tree's mount namespace (a file of the host: give the tree pipes or files of its own)`);
    }
    const { path, linked } = keepIfGone(p, ctx, id);
    const own = create(FileEntrySchema, {
      type: FdTypes.REG,
      id,
      reg: {
        id, flags: p.info.flags, pos: p.info.pos, fown: emptyFown(), name: path, ...(ctx.mnt ? { mntId: p.info.mntId } : {}),
        ...(isReg ? { size: p.stat.size } : {}), mode: Number(p.stat.mode),
      },
    });
    return [...linked, own];
  },
  open: (e, ctx) => {
    const r = e.reg;
    if (!r) throw new StasisError('E_CORRUPT', `File ${e.id} is a regular file without its entry`);
    // An O_TMPFILE file keeps __O_TMPFILE | O_DIRECTORY in its flags: reopened, it is a plain file.
    const tmpfile = (r.flags & O_TMPFILE) === O_TMPFILE ? O_TMPFILE : 0;
    const flags = (r.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | tmpfile)) | O_CLOEXEC;
    const root = (r.mntId !== undefined ? ctx.rootOf?.(r.mntId) : undefined) ?? ctx.root ?? '';
    const name = ctx.ghosts?.pathOf(e, ctx.files) ?? `${root}${r.name}`;
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
  inheritKey: (e) => (e.reg ? pathKey(e.reg.name) : undefined),
} satisfies FileKind;

const DELETED = ' (deleted)';

/**
 * Where a file's path no longer leads to it, what restore needs to make it again: a ghost
 * (its kind and, for a regular file, its contents), or, where it keeps links elsewhere, a
 * temporary link (whose regular file entry is returned, to go before the file's own).
 */
export function keepIfGone(p: FdProbe, ctx: DumpFileCtx, id: number): { path: string; linked: FileEntry[] } {
  const dead = deadProcPid(p.link, p.stat.dev, ctx.ghosts?.mntRoot ?? '');
  if (dead) {
    if (!ctx.ghosts) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is a file of a process that is gone`);
    // Reopened at restore through the root's /proc, another mount than a nested namespace's.
    if (ctx.ghosts.mntRoots.has(p.info.mntId)) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} is a file of a process that is gone, on mount ${p.info.mntId} of a mount namespace below the tree's root's, where stasis cannot reopen such files yet`);
    ctx.ghosts.addDeadPid(id, dead.pid);
    return { path: dead.path, linked: [] };
  }
  const src = { pid: p.pid, what: `fd ${p.fd}`, proc: `/proc/${p.pid}/fd/${p.fd}`, fd: p.fd, stat: p.stat, mntId: p.info.mntId, flags: p.info.flags };
  return keepGoneFile(src, p.link, ctx.ghosts, () => ctx.ids.fresh(), id);
}

/**
 * keepIfGone() for any file a task holds (an fd, a mapped file): `link` is what its /proc
 * link reads. Without a ghost dumper a file that is gone fails the dump.
 */
export function keepGoneFile(src: GhostSource, link: string, ghosts: GhostDumper | undefined, freshId: () => number, id: number): { path: string; linked: FileEntry[] } {
  const { path, gone } = whereIs(link, src.stat, ghosts?.mntRootOf(src.mntId) ?? '');
  if (!gone) return { path, linked: [] };
  if (!ghosts) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${src.what} of pid ${src.pid}: ${link} is an unlinked file`);
  // Still linked elsewhere: kept by a new link (a copy would be another inode).
  if (src.stat.nlink > 0n) {
    const e = ghosts.addLinked(src, id, path, freshId);
    return { path, linked: e ? [e] : [] };
  }
  ghosts.add(src, id, path);
  return { path, linked: [] };
}

const PROC_PID = /^\/proc\/(\d+)(\/|$)/;

/**
 * For a file under /proc/PID (on procfs) of a process that is gone: its pid and path. `root`
 * is where stasis sees the tree's paths: in a mount namespace of its own, its /proc is the
 * tree's (of its pid namespace, whose pids the link names).
 */
export function deadProcPid(link: string, dev: bigint, root = ''): { pid: number; path: string } | null {
  const path = link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : link;
  const m = PROC_PID.exec(path);
  if (!m || fs.existsSync(`${root}/proc/${m[1]}`)) return null;
  try {
    if (fs.statSync(`${root}/proc`, { bigint: true }).dev !== dev) return null;
  } catch {
    return null;
  }
  return { pid: Number(m[1]), path };
}

/**
 * The path of the file behind an fd, and whether that path still leads to it: not when the
 * file was unlinked (the link ends in ` (deleted)`) or another file now has its name.
 */
function whereIs(link: string, stat: fs.BigIntStats, root: string): { path: string; gone: boolean } {
  if (link.endsWith(DELETED)) {
    // A file really named `x (deleted)`, still there, looks the same: stat tells.
    if (sameInode(root + link, stat)) return { path: link, gone: false };
    return { path: link.slice(0, -DELETED.length), gone: true };
  }
  return { path: link, gone: stat.nlink === 0n || !sameInode(root + link, stat) };
}

function sameInode(path: string, stat: fs.BigIntStats): boolean {
  try {
    // An fd on a symlink itself (O_PATH | O_NOFOLLOW) is compared with the symlink, not its target.
    const st = (stat.mode & S_IFMT) === S_IFLNK ? fs.lstatSync(path, { bigint: true }) : fs.statSync(path, { bigint: true });
    return st.dev === stat.dev && st.ino === stat.ino;
  } catch {
    return false;
  }
}
