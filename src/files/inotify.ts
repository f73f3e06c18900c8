// inotify instances. Each watch is in fdinfo with the watched inode's file handle; restore
// makes the instance in stasis, opens each inode by its handle (on a mount of its device)
// and watches it through /proc/self/fd, in wd order. The kernel hands out wds cyclically
// upwards from 1 (idr_alloc_cyclic), so a wd that was freed before the dump is used up by
// a watch added and removed again (CRIU's fsnotify restore does the same), and the events
// that makes are read away. Queued events cannot be put back: a dump with events queued is
// refused. fdinfo shows the event bits and IN_ONESHOT, IN_EXCL_UNLINK of a watch; flags
// used only when adding (IN_ONLYDIR, IN_DONT_FOLLOW, IN_MASK_ADD) are not kept.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { InotifyWdEntry } from '../image/gen/stasis/fsnotify_pb.js';
import {
  closeFd, fcntl, inotifyAddWatch, inotifyInit, inotifyQueued, inotifyRmWatch, openat, openByHandleAt, pidfdGetfd, pidfdOpen,
  readRaw, SyscallError,
} from '../sys/index.js';
import { kernelDev, parseMountinfo } from '../proc/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, O_PATH = 0o10000000, O_DIRECTORY = 0o200000;
const F_SETFL = 4;
const IN_ALL_EVENTS = 0xfff, IN_EXCL_UNLINK = 0x04000000, IN_ONESHOT = 0x80000000;
const MIN_HANDLE_WORDS = 16; // CRIU's fh_entry holds at least MAX_HANDLE_SZ bytes

export const inotify = {
  name: 'inotify',
  type: FdTypes.INOTIFY,
  detect: (p) => p.link === 'anon_inode:inotify',
  dump: (p, _ctx, id) => {
    const queued = queuedBytes(p.pid, p.fd);
    if (queued > 0) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump inotify fd ${p.fd} of pid ${p.pid}: ${queued} bytes of events are queued on it, and stasis cannot queue them again`);
    }
    return create(FileEntrySchema, {
      type: FdTypes.INOTIFY,
      id,
      ify: { id, flags: p.info.flags, fown: emptyFown(), wd: (p.info.inotify ?? []).map((w) => watchEntry(p, id, w)) },
    });
  },
  open: (e) => {
    const f = e.ify;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is an inotify instance without its entry`);
    const fd = inotifyInit(O_NONBLOCK | O_CLOEXEC);
    try {
      const mounts = new MountFds();
      try {
        for (const w of [...f.wd].sort((a, b) => a.wd - b.wd)) addWatchAt(fd, w, mounts, e);
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

function queuedBytes(pid: number, fd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      return inotifyQueued(mine);
    } finally {
      closeFd(mine);
    }
  } finally {
    closeFd(pidfd);
  }
}

function watchEntry(p: FdProbe, id: number, w: NonNullable<FdProbe['info']['inotify']>[number]) {
  if (!w.fhandle) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump watch ${w.wd} of inotify fd ${p.fd} of pid ${p.pid}: the filesystem of inode ${w.ino} gives no file handle`);
  }
  const words = Math.max(MIN_HANDLE_WORDS, Math.ceil(w.fhandle.handle.length / 8));
  const padded = Buffer.alloc(words * 8);
  w.fhandle.handle.copy(padded);
  const handle = Array.from({ length: words }, (_, i) => padded.readBigUInt64LE(i * 8));
  return {
    id, iIno: w.ino, mask: w.mask >>> 0, ignoredMask: w.ignoredMask >>> 0, sDev: w.sdev, wd: w.wd,
    fHandle: { bytes: w.fhandle.handle.length, type: w.fhandle.type, handle },
  };
}

/** Adds the watch so that it gets its wd, using up the wds below it that are free. */
function addWatchAt(fd: number, w: InotifyWdEntry, mounts: MountFds, e: FileEntry): void {
  const fh = w.fHandle;
  if (!fh) throw new StasisError('E_CORRUPT', `Watch ${w.wd} of inotify instance ${e.id} has no file handle`);
  const bytes = Buffer.alloc(fh.handle.length * 8);
  fh.handle.forEach((v, i) => bytes.writeBigUInt64LE(v, i * 8));
  if (fh.bytes > bytes.length) throw new StasisError('E_CORRUPT', `Watch ${w.wd} of inotify instance ${e.id} has a file handle of ${fh.bytes} bytes in ${bytes.length}`);
  let inode;
  try {
    inode = openByHandleAt(mounts.of(w.sDev), fh.type, bytes.subarray(0, fh.bytes), O_PATH | O_CLOEXEC);
  } catch (err) {
    const why = err instanceof SyscallError ? err.code : String(err);
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore watch ${w.wd} of inotify instance ${e.id}: inode ${w.iIno} cannot be opened by its handle (${why})`, { cause: err });
  }
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

/** One fd per device, on a mount of it (the whole filesystem's, where there is one). */
class MountFds {
  private readonly fds = new Map<number, number>();
  private mounts: ReturnType<typeof parseMountinfo> | undefined;

  of(sdev: number): number {
    const have = this.fds.get(sdev);
    if (have !== undefined) return have;
    this.mounts ??= parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
    const { major, minor } = kernelDev(sdev);
    const on = this.mounts.filter((m) => m.dev.major === major && m.dev.minor === minor);
    const m = on.find((x) => x.root === '/') ?? on[0];
    if (!m) throw new StasisError('E_RESTORE_FAILED', `Cannot restore an inotify watch on device ${major}:${minor}: it is not mounted here`);
    // Not O_PATH: open_by_handle_at() takes its mount from a real open file (EBADF otherwise).
    const fd = openat(-100, m.mountPoint, O_DIRECTORY | O_CLOEXEC);
    this.fds.set(sdev, fd);
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
  }
}
