// inotify instances. Each watch is in fdinfo with the watched inode's file handle; restore
// makes the instance in stasis, opens each inode by its handle (on a mount of its device)
// and watches it through /proc/self/fd, in wd order. The kernel hands out wds cyclically
// upwards from 1 (idr_alloc_cyclic), so a wd that was freed before the dump is used up by
// a watch added and removed again (CRIU's fsnotify restore does the same), and the events
// that makes are read away. Queued events cannot be put back: a dump with events queued is
// refused. fdinfo shows the event bits and IN_ONESHOT, IN_EXCL_UNLINK of a watch; flags
// used only when adding (IN_ONLYDIR, IN_DONT_FOLLOW, IN_MASK_ADD) are not kept.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { InotifyWdEntry } from '../image/gen/stasis/fsnotify_pb.js';
import { closeFd, fcntl, inotifyAddWatch, inotifyInit, inotifyQueued, inotifyRmWatch, readRaw, withTaskFd } from '../sys/index.js';
import { handleEntry, handleEntryInTree, openHandle, openInTree, MountFds } from './fsnotify-handles.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe, FileKind, RestoreFileCtx } from './kind.js';
import { emptyFown } from './reg.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const F_SETFL = 4;
const IN_ALL_EVENTS = 0xfff, IN_EXCL_UNLINK = 0x04000000, IN_ONESHOT = 0x80000000;

export const inotify = {
  name: 'inotify',
  type: FdTypes.INOTIFY,
  detect: (p) => p.link === 'anon_inode:inotify',
  dump: (p, ctx, id) => {
    const queued = withTaskFd(p.pid, p.fd, inotifyQueued);
    if (queued > 0) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump inotify fd ${p.fd} of pid ${p.pid}: ${queued} bytes of events are queued on it, and stasis cannot queue them again`);
    }
    return create(FileEntrySchema, {
      type: FdTypes.INOTIFY,
      id,
      ify: { id, flags: p.info.flags, fown: emptyFown(), wd: (p.info.inotify ?? []).map((w) => watchEntry(p, ctx, id, w)) },
    });
  },
  open: (e, ctx) => {
    const f = e.ify;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is an inotify instance without its entry`);
    const fd = inotifyInit(O_NONBLOCK | O_CLOEXEC);
    try {
      const mounts = new MountFds();
      try {
        for (const w of [...f.wd].sort((a, b) => a.wd - b.wd)) addWatchAt(fd, w, mounts, e, ctx);
      } finally {
        mounts.close();
      }
      // The IN_IGNORED events of the watches removed again, and any the opening made.
      const buf = Buffer.alloc(65536);
      while (readRaw(fd, buf, 0, buf.length) > 0);
      if (!(f.flags & O_NONBLOCK)) fcntl(fd, F_SETFL, 0);
    } catch (err) {
      closeFd(fd);
      if (err instanceof StasisError) throw err;
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore inotify instance ${e.id}: ${(err as Error).message}`, { cause: err });
    }
    return { status: 'done', fd };
  },
} satisfies FileKind;

function watchEntry(p: FdProbe, ctx: DumpFileCtx, id: number, w: NonNullable<FdProbe['info']['inotify']>[number]) {
  const what = `watch ${w.wd} of inotify fd ${p.fd} of pid ${p.pid}`;
  if (!w.fhandle) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: the filesystem of inode ${w.ino} gives no file handle`);
  }
  // In the tree's own mount namespace its inode is found again by path, on its mount.
  const fHandle = ctx.mnt ? handleEntryInTree(w.fhandle, w.sdev, BigInt(w.ino), ctx.mnt, `${what} (inode ${w.ino})`) : handleEntry(w.fhandle, w.sdev, BigInt(w.ino));
  return { id, iIno: w.ino, mask: w.mask >>> 0, ignoredMask: w.ignoredMask >>> 0, sDev: w.sdev, wd: w.wd, fHandle };
}

/** Adds the watch so that it gets its wd, using up the wds below it that are free. */
function addWatchAt(fd: number, w: InotifyWdEntry, mounts: MountFds, e: FileEntry, ctx: RestoreFileCtx): void {
  const what = `watch ${w.wd} of inotify instance ${e.id} (inode ${w.iIno})`;
  // Dumped in a mount namespace of the tree's own: by its path in its mount's namespace.
  const inTree = ctx.root !== undefined && w.fHandle?.mntId !== undefined && w.fHandle.path !== undefined;
  const inode = inTree ? openInTree(w.fHandle!, ctx.root!, ctx.rootOf, what) : openHandle(mounts, w.sDev, w.fHandle, what);
  try {
    const path = `/proc/self/fd/${inode}`;
    const mask = w.mask & (IN_ALL_EVENTS | IN_EXCL_UNLINK | IN_ONESHOT);
    for (;;) {
      const got = inotifyAddWatch(fd, path, mask);
      if (got === w.wd) return;
      if (got > w.wd) throw new StasisError('E_RESTORE_FAILED', `Cannot restore watch ${w.wd} of inotify instance ${e.id}: the kernel gave wd ${got}`);
      inotifyRmWatch(fd, got);
    }
  } finally {
    closeFd(inode);
  }
}
