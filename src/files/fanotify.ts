// fanotify groups, as CRIU keeps them (FanotifyFileEntry): fanotify_init's flags and event
// flags from fdinfo, and every mark: on an inode (named by its file handle, opened again by
// it at restore) or on a mount (by its mount id, marked again through its mount point), with
// its FAN_MARK_* flags, event mask and ignored mask. In a mount namespace of the tree's own an
// inode is named by its path there (as inotify's watches are) and a mount by its mnt_id, which
// restore finds in the mountpoints images and opens from the restored root (CRIU's
// lookup_mnt_id). Queued events cannot be put back (each carries the pid that caused it and an
// open file): a group with events queued is refused, as are filesystem marks, which CRIU's
// image has no kind for.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { MarkType, type FanotifyMarkEntry } from '../image/gen/stasis/fsnotify_pb.js';
import { closeFd, fanotifyInit, fanotifyMark, inotifyQueued, mountIdOf, openat, SyscallError, withTaskFd } from '../sys/index.js';
import type { FanotifyMark } from '../proc/index.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe, FileKind, RestoreFileCtx } from './kind.js';
import { emptyFown } from './reg.js';
import { handleEntry, handleEntryInTree, imageMountPoints, openHandle, openInTree, MountFds } from './fsnotify-handles.js';

const FAN_MARK_ADD = 0x1, FAN_MARK_MOUNT = 0x10, FAN_MARK_IGNORED_MASK = 0x20, FAN_MARK_IGNORE = 0x400;
const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
const O_PATH = 0o10000000, O_CLOEXEC = 0o2000000;

export const fanotify = {
  name: 'fanotify',
  type: FdTypes.FANOTIFY,
  detect: (p) => p.link === 'anon_inode:[fanotify]',
  dump: (p, ctx, id) => {
    const info = p.info.fanotify;
    if (!info) throw new StasisError('E_UNSUPPORTED', `Cannot dump fanotify fd ${p.fd} of pid ${p.pid}: its fdinfo shows no fanotify flags`);
    const queued = withTaskFd(p.pid, p.fd, inotifyQueued);
    if (queued > 0) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump fanotify fd ${p.fd} of pid ${p.pid}: ${queued} bytes of events are queued on it, and stasis cannot queue them again`);
    }
    return create(FileEntrySchema, {
      type: FdTypes.FANOTIFY,
      id,
      ffy: {
        id, flags: p.info.flags, fown: emptyFown(), faflags: info.flags, evflags: info.eventFlags,
        mark: info.marks.map((m) => markEntry(p, ctx, id, m)),
      },
    });
  },
  open: (e, ctx) => {
    const f = e.ffy;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is a fanotify group without its entry`);
    // FAN_CLOEXEC as it was: the group shows its flags in fdinfo (stasis execs nothing).
    const fd = fanotifyInit(f.faflags, f.evflags);
    const mounts = new MountFds();
    try {
      // fdinfo lists the newest mark first: added oldest first, they list as they did.
      for (const m of [...f.mark].reverse()) addMark(fd, m, mounts, e.id, ctx);
    } catch (err) {
      closeFd(fd);
      if (err instanceof StasisError) throw err;
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore fanotify group ${e.id}: ${(err as Error).message}`, { cause: err });
    } finally {
      mounts.close();
    }
    return { status: 'done', fd };
  },
} satisfies FileKind;

function markEntry(p: FdProbe, ctx: DumpFileCtx, id: number, m: FanotifyMark) {
  const base = { id, mflags: m.mflags, mask: m.mask >>> 0, ignoredMask: m.ignoredMask >>> 0 };
  const what = `fanotify fd ${p.fd} of pid ${p.pid}`;
  if (m.target === 'inode') {
    if (!m.fhandle) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: the filesystem of marked inode ${m.ino} gives no file handle`);
    }
    const fHandle = ctx.mnt ? handleEntryInTree(m.fhandle, m.sdev, BigInt(m.ino), ctx.mnt, `a mark of ${what} (inode ${m.ino})`) : handleEntry(m.fhandle, m.sdev, BigInt(m.ino));
    return { ...base, type: MarkType.INODE, sDev: m.sdev, ie: { iIno: m.ino, fHandle } };
  }
  if (m.target === 'mount') {
    if (ctx.mnt) checkMarkedMount(what, m.mntId, ctx.mnt);
    return { ...base, type: MarkType.MOUNT, sDev: 0, me: { mntId: m.mntId } };
  }
  throw new StasisError('E_UNSUPPORTED', `Cannot dump fanotify fd ${p.fd} of pid ${p.pid}: it marks a whole filesystem (FAN_MARK_FILESYSTEM), which stasis cannot restore yet`);
}

/**
 * In a mount namespace of the tree's own, a marked mount must be one of the tree's, reached at
 * its mount point (restore marks the mount it finds there): one covered by another is refused.
 */
function checkMarkedMount(what: string, mntId: number, mnt: NonNullable<DumpFileCtx['mnt']>): void {
  const m = mnt.list.find((x) => x.mountId === mntId);
  if (!m || !mnt.ids.has(mntId)) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it marks mount ${mntId}, which is not one of the tree's mount namespace`);
  const top = mountIdOf(`${m.proc}${m.mountPoint}`);
  if (top !== mntId) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it marks mount ${mntId} at ${m.mountPoint}, which mount ${top ?? '?'} covers, and stasis marks a mount again through its mount point`);
}

const imageMounts = new WeakMap<RestoreFileCtx, ReturnType<typeof imageMountPoints>>();

/** The images' mounts, read once per restore. */
function mountPointsOf(ctx: RestoreFileCtx): ReturnType<typeof imageMountPoints> {
  let got = imageMounts.get(ctx);
  if (!got) imageMounts.set(ctx, (got = imageMountPoints(ctx.imagesDir)));
  return got;
}

/** The mark's mask, then its ignored mask (with its flags), on the inode or mount. */
function addMark(fd: number, m: FanotifyMarkEntry, mounts: MountFds, group: number, ctx: RestoreFileCtx): void {
  let path: string;
  let target = -1;
  let flags = FAN_MARK_ADD;
  const what = `a ${m.type === MarkType.MOUNT ? 'mount' : 'inode'} mark of fanotify group ${group}`;
  if (m.type === MarkType.MOUNT && ctx.root !== undefined) {
    // Dumped in a mount namespace of the tree's own: the mount the images give that mnt_id, from the root of its namespace.
    const mntId = m.me?.mntId ?? -1;
    const mp = mountPointsOf(ctx).get(mntId);
    if (!mp) throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${what}: mount ${mntId} is not in the images' mounts`);
    const at = `${ctx.rootOf?.(mntId) ?? ctx.root}${mp.mountPoint.replace(/^\.?\/*/, '/')}`;
    try {
      target = openat(-100, at, O_PATH | O_CLOEXEC);
    } catch (err) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${what}: mount ${mntId} at ${mp.mountPoint} cannot be opened (${err instanceof SyscallError ? err.code : String(err)})`, { cause: err });
    }
    path = `/proc/self/fd/${target}`;
    flags |= FAN_MARK_MOUNT;
  } else if (m.type === MarkType.MOUNT) {
    const at = m.me ? mounts.pathOf(m.me.mntId) : undefined;
    if (at === undefined) throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${what}: mount ${m.me?.mntId} is not here`);
    path = at;
    flags |= FAN_MARK_MOUNT;
  } else {
    const fh = m.ie?.fHandle;
    const inTree = ctx.root !== undefined && fh?.mntId !== undefined && fh.path !== undefined;
    const label = `${what} (inode ${m.ie?.iIno})`;
    target = inTree ? openInTree(fh!, ctx.root!, ctx.rootOf, label) : openHandle(mounts, m.sDev, fh, label);
    path = `/proc/self/fd/${target}`;
  }
  try {
    // FAN_MARK_IGNORED_SURV_MODIFY (and the newer FAN_MARK_IGNORE) only go with the ignored mask.
    const ignoreFlags = m.mflags & (FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_IGNORE);
    const rest = m.mflags & ~ignoreFlags;
    if (m.mask) fanotifyMark(fd, flags | rest, m.mask, path);
    if (m.ignoredMask) {
      const kind = m.mflags & FAN_MARK_IGNORE ? 0 : FAN_MARK_IGNORED_MASK;
      fanotifyMark(fd, flags | rest | ignoreFlags | kind, m.ignoredMask, path);
    }
  } finally {
    if (target >= 0) closeFd(target);
  }
}
