// fanotify groups, as CRIU keeps them (FanotifyFileEntry): fanotify_init's flags and event
// flags from fdinfo, and every mark: on an inode (named by its file handle, opened again by
// it at restore) or on a mount (by its mount id, marked again through its mount point), with
// its FAN_MARK_* flags, event mask and ignored mask. Queued events cannot be put back (each
// carries the pid that caused it and an open file): a group with events queued is refused,
// as are filesystem marks, which CRIU's image has no kind for.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { MarkType, type FanotifyMarkEntry } from '../image/gen/stasis/fsnotify_pb.js';
import { closeFd, fanotifyInit, fanotifyMark, inotifyQueued, withTaskFd } from '../sys/index.js';
import type { FanotifyMark } from '../proc/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind } from './kind.js';
import { emptyFown } from './reg.js';
import { handleEntry, openHandle, MountFds } from './fsnotify-handles.js';

const FAN_MARK_ADD = 0x1, FAN_MARK_MOUNT = 0x10, FAN_MARK_IGNORED_MASK = 0x20, FAN_MARK_IGNORE = 0x400;
const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;

export const fanotify = {
  name: 'fanotify',
  type: FdTypes.FANOTIFY,
  detect: (p) => p.link === 'anon_inode:[fanotify]',
  dump: (p, _ctx, id) => {
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
        mark: info.marks.map((m) => markEntry(p, id, m)),
      },
    });
  },
  open: (e) => {
    const f = e.ffy;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is a fanotify group without its entry`);
    // FAN_CLOEXEC as it was: the group shows its flags in fdinfo (stasis execs nothing).
    const fd = fanotifyInit(f.faflags, f.evflags);
    const mounts = new MountFds();
    try {
      // fdinfo lists the newest mark first: added oldest first, they list as they did.
      for (const m of [...f.mark].reverse()) addMark(fd, m, mounts, e.id);
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

function markEntry(p: FdProbe, id: number, m: FanotifyMark) {
  const base = { id, mflags: m.mflags, mask: m.mask >>> 0, ignoredMask: m.ignoredMask >>> 0 };
  if (m.target === 'inode') {
    if (!m.fhandle) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump fanotify fd ${p.fd} of pid ${p.pid}: the filesystem of marked inode ${m.ino} gives no file handle`);
    }
    return { ...base, type: MarkType.INODE, sDev: m.sdev, ie: { iIno: m.ino, fHandle: handleEntry(m.fhandle, m.sdev, BigInt(m.ino)) } };
  }
  if (m.target === 'mount') return { ...base, type: MarkType.MOUNT, sDev: 0, me: { mntId: m.mntId } };
  throw new StasisError('E_UNSUPPORTED', `Cannot dump fanotify fd ${p.fd} of pid ${p.pid}: it marks a whole filesystem (FAN_MARK_FILESYSTEM), which stasis cannot restore yet`);
}

/** The mark's mask, then its ignored mask (with its flags), on the inode or mount. */
function addMark(fd: number, m: FanotifyMarkEntry, mounts: MountFds, group: number): void {
  let path: string;
  let inode = -1;
  let flags = FAN_MARK_ADD;
  if (m.type === MarkType.MOUNT) {
    const at = m.me ? mounts.pathOf(m.me.mntId) : undefined;
    if (at === undefined) throw new StasisError('E_RESTORE_FAILED', `Cannot restore a mount mark of fanotify group ${group}: mount ${m.me?.mntId} is not here`);
    path = at;
    flags |= FAN_MARK_MOUNT;
  } else {
    inode = openHandle(mounts, m.sDev, m.ie?.fHandle, `a mark of fanotify group ${group} (inode ${m.ie?.iIno})`);
    path = `/proc/self/fd/${inode}`;
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
    if (inode >= 0) closeFd(inode);
  }
}
