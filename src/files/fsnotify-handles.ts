// What inotify watches and fanotify marks share: the watched inode named by its file handle
// (CRIU's FhEntry, at least MAX_HANDLE_SZ bytes as 64-bit words), opened again at restore
// with open_by_handle_at on a mount of its device.
import fs from 'node:fs';
import { closeFd, mountIdOf, openat, openByHandleAt, SyscallError } from '../sys/index.js';
import { kernelDev, parseMountinfo, type FileHandle } from '../proc/index.js';
import type { FhEntry } from '../image/gen/stasis/fh_pb.js';
import { readImage } from '../image/index.js';
import { StasisError } from '../errors.js';
import type { TreeMounts } from './kind.js';

const O_CLOEXEC = 0o2000000, O_PATH = 0o10000000, O_DIRECTORY = 0o200000, O_NOFOLLOW = 0o400000;
const MIN_HANDLE_WORDS = 16; // CRIU's fh_entry holds at least MAX_HANDLE_SZ bytes

/**
 * The FhEntry of inode `ino` on device `sdev`: its handle, and its path where the handle
 * opens to a path that leads back to the same inode. CRIU's restore watches the path when
 * there is one and only falls back to the handle on a mount it knows (its mountinfo image),
 * which stasis does not write: without the path CRIU 4.2 fails ("Unable to open (null)").
 */
export function handleEntry(fh: FileHandle, sdev: number, ino: bigint): { bytes: number; type: number; handle: bigint[]; path?: string } {
  const words = Math.max(MIN_HANDLE_WORDS, Math.ceil(fh.handle.length / 8));
  const padded = Buffer.alloc(words * 8);
  fh.handle.copy(padded);
  const path = pathOfHandle(fh, sdev, ino);
  return { bytes: fh.handle.length, type: fh.type, handle: Array.from({ length: words }, (_, i) => padded.readBigUInt64LE(i * 8)), ...(path ? { path } : {}) };
}

/**
 * In a mount namespace of the tree's own, the FhEntry of inode `ino` on device `sdev` names
 * it by its path in the namespace of a mount of that device (CRIU's alloc_openable, run in
 * each namespace) and by that mount (mnt_id): restore opens the path there, as the handle
 * alone cannot reach a filesystem made again (a tmpfs comes back with other inode numbers).
 * A handle that no path of the tree's mounts leads back to is refused (`what` names it).
 */
export function handleEntryInTree(fh: FileHandle, sdev: number, ino: bigint, mnt: TreeMounts, what: string): { bytes: number; type: number; handle: bigint[]; path: string; mntId: number } {
  const { major, minor } = kernelDev(sdev);
  const on = mnt.list.filter((m) => m.dev.major === major && m.dev.minor === minor);
  // The whole filesystem's mounts first: a bind of a subtree opens only what is below it.
  on.sort((a, b) => Number(b.root === '/') - Number(a.root === '/'));
  for (const m of on) {
    const found = pathIn(m.proc, m.mountPoint, fh, sdev, ino);
    if (found) {
      const words = Math.max(MIN_HANDLE_WORDS, Math.ceil(fh.handle.length / 8));
      const padded = Buffer.alloc(words * 8);
      fh.handle.copy(padded);
      return { bytes: fh.handle.length, type: fh.type, handle: Array.from({ length: words }, (_, i) => padded.readBigUInt64LE(i * 8)), ...found };
    }
  }
  const where = on.length ? `no path of its mounts (${on.map((m) => m.mountId).join(', ')}) leads to it` : 'no mount of the tree shows its device';
  throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it is on device ${major}:${minor} in a tree with a mount namespace of its own, and ${where}, so stasis cannot find it again there`);
}

/** The path (as namespace root `proc` shows it) and mount of a handle's inode, opened on the mount at `mountPoint`. */
function pathIn(proc: string, mountPoint: string, fh: FileHandle, sdev: number, ino: bigint): { path: string; mntId: number } | undefined {
  let dir = -1, fd = -1;
  try {
    dir = openat(-100, `${proc}${mountPoint}`, O_DIRECTORY | O_CLOEXEC);
    fd = openByHandleAt(dir, fh.type, fh.handle, O_PATH | O_CLOEXEC);
    // A mount of another namespace: its link is its path from that namespace's root.
    const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
    if (!link.startsWith('/')) return undefined;
    const st = fs.lstatSync(`${proc}${link}`, { bigint: true, throwIfNoEntry: false });
    if (st?.ino !== ino || Number(st.dev) !== devOf(sdev)) return undefined;
    const mntId = mountIdOf(`${proc}${link}`);
    return mntId === undefined ? undefined : { path: link, mntId };
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) closeFd(fd);
    if (dir >= 0) closeFd(dir);
  }
}

/** The st_dev (glibc's encoding) of the kernel's dev_t `sdev`. */
function devOf(sdev: number): number {
  const { major, minor } = kernelDev(sdev);
  return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
}

/** The path of a handle's inode as this process sees it (CRIU's alloc_openable), or undefined. */
function pathOfHandle(fh: FileHandle, sdev: number, ino: bigint): string | undefined {
  const mounts = new MountFds();
  try {
    const fd = openByHandleAt(mounts.of(sdev), fh.type, fh.handle, O_PATH | O_CLOEXEC);
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      const st = link.startsWith('/') ? fs.statSync(link, { bigint: true, throwIfNoEntry: false }) : undefined;
      return st?.ino === ino ? link : undefined;
    } finally {
      closeFd(fd);
    }
  } catch {
    return undefined; // unreachable by a path: CRIU's image then has the handle only, as it writes itself
  } finally {
    mounts.close();
  }
}

/**
 * Opens (O_PATH) the inode of a watch dumped in a mount namespace of the tree's own: by its
 * path, from the root of its mount's namespace (`rootOf`: a nested one's helper, undefined
 * for the tree's root's, whose root is `root`).
 */
export function openInTree(fh: FhEntry, root: string, rootOf: ((mntId: number) => string | undefined) | undefined, what: string): number {
  // CRIU writes the path relative to the namespace's root ("./a/b"), stasis from it ("/a/b").
  const path = (fh.path ?? '').replace(/^\.?\/*/, '/');
  const at = `${(fh.mntId !== undefined ? rootOf?.(fh.mntId) : undefined) ?? root}${path}`;
  try {
    return openat(-100, at, O_PATH | O_NOFOLLOW | O_CLOEXEC); // the inode itself, a symlink too
  } catch (err) {
    const why = err instanceof SyscallError ? err.code : String(err);
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${what}: ${fh.path} of mount ${fh.mntId} cannot be opened (${why})`, { cause: err });
  }
}

/** The mounts of the mountpoints images in `dir`, by mnt_id: each one's mount point and namespace id. */
export function imageMountPoints(dir: string): Map<number, { mountPoint: string; ns: number }> {
  const got = new Map<number, { mountPoint: string; ns: number }>();
  for (const f of fs.readdirSync(dir)) {
    const ns = /^mountpoints-(\d+)\.img$/.exec(f)?.[1];
    if (ns === undefined) continue;
    for (const e of readImage(dir, 'mountpoints', Number(ns))) got.set(e.mntId, { mountPoint: e.mountpoint, ns: Number(ns) });
  }
  return got;
}

/** Opens (O_PATH) the inode of a handle on device `sdev`; `what` names it in errors. */
export function openHandle(mounts: MountFds, sdev: number, fh: FhEntry | undefined, what: string): number {
  if (!fh) throw new StasisError('E_CORRUPT', `${what} has no file handle`);
  const bytes = Buffer.alloc(fh.handle.length * 8);
  fh.handle.forEach((v, i) => bytes.writeBigUInt64LE(v, i * 8));
  if (fh.bytes > bytes.length) throw new StasisError('E_CORRUPT', `${what} has a file handle of ${fh.bytes} bytes in ${bytes.length}`);
  try {
    return openByHandleAt(mounts.of(sdev), fh.type, bytes.subarray(0, fh.bytes), O_PATH | O_CLOEXEC);
  } catch (err) {
    const why = err instanceof SyscallError ? err.code : String(err);
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore ${what}: its inode cannot be opened by its handle (${why})`, { cause: err });
  }
}

/** One fd per device, on a mount of it (the whole filesystem's, where there is one). */
export class MountFds {
  private readonly fds = new Map<number, number>();
  private mounts: ReturnType<typeof parseMountinfo> | undefined;

  of(sdev: number): number {
    const have = this.fds.get(sdev);
    if (have !== undefined) return have;
    const { major, minor } = kernelDev(sdev);
    const on = this.list().filter((m) => m.dev.major === major && m.dev.minor === minor);
    const m = on.find((x) => x.root === '/') ?? on[0];
    if (!m) throw new StasisError('E_RESTORE_FAILED', `Cannot restore a watch on device ${major}:${minor}: it is not mounted here`);
    // Not O_PATH: open_by_handle_at() takes its mount from a real open file (EBADF otherwise).
    const fd = openat(-100, m.mountPoint, O_DIRECTORY | O_CLOEXEC);
    this.fds.set(sdev, fd);
    return fd;
  }

  /** The mount point of mount `mntId`, as this process sees it. */
  pathOf(mntId: number): string | undefined {
    return this.list().find((m) => m.mountId === mntId)?.mountPoint;
  }

  private list(): ReturnType<typeof parseMountinfo> {
    this.mounts ??= parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
    return this.mounts;
  }

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
  }
}
