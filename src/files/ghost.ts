// Ghost files at dump: a file open in a task (or its cwd or root) whose path no longer leads
// to it (it was unlinked, or another file was put in its place) cannot be reopened by path,
// so what restore needs to make it again goes into the image, as CRIU's ghost files do:
// ghost-file-<hex id>.img holds a GhostFileEntry (mode, owner, times; a device's rdev, a
// symlink's target) and, for a regular file, the data as chunks (holes skipped);
// remap-fpath.img maps the regular file's id to the ghost's. One ghost per inode: every open
// of it shares the ghost.
// A file under /proc/PID of a process gone since is remapped to its pid (CRIU's PROCFS remap).
// A file with links left elsewhere (st_nlink > 0) is not copied: a copy would be another
// inode, no longer shared with its other names. With --link-remap it is linked under a
// temporary name beside its old one (CRIU's `link_remap.<id>`, a LINKED remap to a regular
// file entry of that name), which restore opens and removes; without, the dump is refused.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { GhostFileEntrySchema, GhostChunkEntrySchema } from '../image/gen/stasis/ghost-file_pb.js';
import { RemapFilePathEntrySchema, RemapType, type RemapFilePathEntry } from '../image/gen/stasis/remap-file-path_pb.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { GhostFileImage } from '../image/index.js';
import { linkAt, lseek, mountIdOf, readlinkFd, withTaskFd, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { parseMountinfo, type MountInfo } from '../proc/mountinfo.js';
import { fsPathOf, treePathOf } from './mount-paths.js';
import { emptyFown } from './reg.js';

/** CRIU's default --ghost-limit: 1 MiB. */
export const DEFAULT_GHOST_LIMIT = 1 << 20;
const SEEK_DATA = 3, SEEK_HOLE = 4;
const ENXIO = 6, ENOENT = 2, AT_SYMLINK_FOLLOW = 0x400;
const S_IFMT = 0o170000n, S_IFREG = 0o100000n, S_IFLNK = 0o120000n, S_IFCHR = 0o020000n, S_IFBLK = 0o060000n;
const CHUNK = 1 << 20;
const O_ACCMODE = 3;

/** What a ghost is made of: the file as a /proc link leads to it (`/proc/PID/fd/N`, `/proc/PID/cwd`). */
export interface GhostSource {
  pid: number;
  /** Names it in messages: `fd 4`, `working directory`. */
  what: string;
  proc: string;
  /** The task's fd, where it is one. */
  fd?: number;
  stat: fs.BigIntStats;
  mntId: number;
  /** The fd's open flags, where it is one. */
  flags?: number;
}

export class GhostDumper {
  private readonly byInode = new Map<string, number>();
  /** The mount each ghost's inode was first found open through, and its path. */
  private readonly mntByInode = new Map<string, { mnt: number; path: string; pid: number }>();
  private nextId = 1;
  readonly remaps: RemapFilePathEntry[] = [];
  readonly ghosts: { id: number; image: GhostFileImage }[] = [];
  /** The temporary links made (a failed dump removes them; restore removes them otherwise). */
  readonly links: string[] = [];
  private readonly linkByInode = new Map<string, number>();

  /**
   * Where the tree's paths lead from: its root's /proc/PID/root in a mount namespace of its own
   * (its links read as the tree sees them), '' in stasis's.
   */
  mntRoot = '';
  /** Where the paths of files on a mount of a nested mount namespace lead from (its first task's /proc/PID/root), by mount id. */
  readonly mntRoots = new Map<number, string>();

  /** Where the path of a file on mount `mntId` leads from. */
  mntRootOf(mntId: number): string {
    return this.mntRoots.get(mntId) ?? this.mntRoot;
  }

  constructor(readonly limit: number = DEFAULT_GHOST_LIMIT, readonly linkRemap = false) {}

  /**
   * Restore makes a ghost (and dump a linked remap's link) at its path, through the tree's root
   * in a mount namespace of the tree's own, as it is in stasis's: refused where its directory
   * no longer leads to the file's mount (a mount over it, as in zdtm overmount_file, would get
   * the file instead, on another filesystem).
   */
  private refuseElsewhere(s: GhostSource, path: string): number | undefined {
    const mnt = s.mntId > 0 ? s.mntId : mountIdOf(s.proc);
    if (mnt === undefined) return undefined;
    const root = this.mntRootOf(mnt);
    const why = `Cannot dump ${s.what} of pid ${s.pid}: ${path} was removed or replaced, and`;
    let dir = path.slice(0, path.lastIndexOf('/')) || '/';
    while (dir !== '/' && !fs.existsSync(`${root}${dir}`)) dir = dir.slice(0, dir.lastIndexOf('/')) || '/';
    const at = mountIdOf(`${root}${dir}`);
    if (at !== undefined && at !== mnt) throw new StasisError('E_UNSUPPORTED', `${why} its directory ${dir} now leads to mount ${at}, not to its mount ${mnt} (a mount over it hides where the file was)`);
    return mnt;
  }

  /** Whether `a` on mount `ma` and `b` on mount `mb` were in one directory (a ghost made in it shows through both mounts). */
  private sameDir(ma: number, a: string, mb: number, b: string): boolean {
    const dirOf = (m: number, p: string) => {
      try {
        return fs.statSync(`${this.mntRootOf(m)}${p.slice(0, p.lastIndexOf('/')) || '/'}`, { bigint: true });
      } catch {
        return undefined;
      }
    };
    const x = dirOf(ma, a), y = dirOf(mb, b);
    return !!x && !!y && x.dev === y.dev && x.ino === y.ino && a.slice(a.lastIndexOf('/')) === b.slice(b.lastIndexOf('/'));
  }

  /**
   * Restore makes a ghost on a mount read-only per mount through a writable clone of it and
   * opens it through the mount: refused where it could not be made (a read-only filesystem)
   * or opened so (for writing, on a read-only mount). The kernel refuses the remounts that
   * would lead there while such files are open; these guard the image, not a known case.
   */
  private refuseReadOnly(s: GhostSource, path: string, mnt: number | undefined): void {
    if (mnt === undefined) return;
    let m;
    try {
      m = parseMountinfo(fs.readFileSync(`/proc/${s.pid}/mountinfo`, 'utf8')).find((x) => x.mountId === mnt);
    } catch {
      return; // the task's mounts unreadable: restore says what it cannot make
    }
    if (!m) return;
    const why = `Cannot dump ${s.what} of pid ${s.pid}: ${path} was removed, and`;
    if (m.superOptions.includes('ro')) throw new StasisError('E_UNSUPPORTED', `${why} its filesystem (${m.fsType}, mount ${mnt} at ${m.mountPoint}) is read-only, where stasis cannot make it again`);
    if (m.mountOptions.includes('ro') && s.flags !== undefined && (s.flags & O_ACCMODE) !== 0) {
      throw new StasisError('E_UNSUPPORTED', `${why} it is open for writing on mount ${mnt} at ${m.mountPoint}, which is read-only, where stasis cannot open it so again`);
    }
  }

  /**
   * Whether a mount of the tree's namespaces (of the same filesystem) shows the directory of `first.path` on mount `first.mnt` and that of `path` on
   * mount `mnt`: restore links the ghost made in one into the other through it.
   */
  private bothShown(first: { mnt: number; path: string; pid: number }, pid: number, mnt: number, path: string): boolean {
    let mounts: MountInfo[];
    try {
      // (Both fds may be one task's, of a mount of another namespace: every namespace's mounts are looked at.)
      const nsPids = [this.mntRoot, ...this.mntRoots.values()].map((r) => /^\/proc\/(\d+)\/root$/.exec(r)?.[1]).filter((p) => p !== undefined).map(Number);
      mounts = [...new Set([first.pid, pid, ...nsPids])].flatMap((p) => parseMountinfo(fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8')));
    } catch {
      return false;
    }
    const m1 = mounts.find((m) => m.mountId === first.mnt), m2 = mounts.find((m) => m.mountId === mnt);
    if (!m1 || !m2) return false;
    const place = (m: MountInfo) => ({ root: m.root, mountpoint: m.mountPoint });
    const dir = (m: MountInfo, p: string) => fsPathOf(place(m), p.slice(0, p.lastIndexOf('/')) || '/');
    const d1 = dir(m1, first.path), d2 = dir(m2, path);
    const sameFs = (m: MountInfo) => m.dev.major === m1.dev.major && m.dev.minor === m1.dev.minor;
    return d1 !== undefined && d2 !== undefined && sameFs(m2) &&
      mounts.some((t) => sameFs(t) && !t.root.endsWith('//deleted') && treePathOf(place(t), d1) !== undefined && treePathOf(place(t), d2) !== undefined);
  }

  /** Keeps the file behind `s` (once per inode) and remaps file `fileId` to it. */
  add(s: GhostSource, fileId: number, path: string): void {
    const mnt = this.refuseElsewhere(s, path);
    this.refuseReadOnly(s, path, mnt);
    const key = `${s.stat.dev}:${s.stat.ino}`;
    // One ghost is made in one directory: an inode open through two mounts is opened through
    // each where its directory is one through both (zdtm mntns_ghost01), or, for binds of two
    // directories (zdtm mntns_link_ghost), linked into the other directory through a mount that
    // shows both (CRIU's rfi_remap through the mount the binds are of); else it is refused.
    const first = this.mntByInode.get(key);
    if (first && mnt !== undefined && first.mnt !== mnt && !this.sameDir(first.mnt, first.path, mnt, path) && !this.bothShown(first, s.pid, mnt, path)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump ${s.what} of pid ${s.pid}: ${path} was removed, and its inode is open through two mounts of two directories (${first.mnt}, as ${first.path}, and ${mnt}), and no mount of their namespaces shows both directories, through which stasis would link it from one to the other`);
    }
    if (!first && mnt !== undefined) this.mntByInode.set(key, { mnt, path, pid: s.pid });
    let id = this.byInode.get(key);
    if (id === undefined) {
      // What the file occupies on disk, as CRIU measures it (st_blocks): holes cost nothing.
      const used = s.stat.blocks * 512n;
      if ((s.stat.mode & S_IFMT) === S_IFREG && used > BigInt(this.limit)) {
        throw new StasisError('E_GHOST_LIMIT',
          `Cannot dump ${s.what} of pid ${s.pid}: ${path} was deleted or replaced and its contents (${used} bytes) ` +
          `exceed the ghost file limit of ${this.limit} bytes; raise it with --ghost-limit (ghostLimit)`);
      }
      id = this.nextId++;
      this.ghosts.push({ id, image: this.read(s) });
      this.byInode.set(key, id);
    }
    this.remaps.push(create(RemapFilePathEntrySchema, { origId: fileId, remapId: id, remapType: RemapType.GHOST }));
  }

  /**
   * Keeps a file that lost its name but has links elsewhere by a new link beside the old
   * name, and remaps file `fileId` to it; returns the regular file entry of the new link
   * (once per inode, null after).
   */
  addLinked(s: GhostSource, fileId: number, path: string, freshId: () => number): FileEntry | null {
    const mnt = this.refuseElsewhere(s, path);
    if (!this.linkRemap) {
      throw new StasisError('E_UNSUPPORTED',
        `Cannot dump ${s.what} of pid ${s.pid}: ${path} was unlinked or replaced, but its inode has ${s.stat.nlink} other link(s), ` +
        'which a copy would not share; dump with --link-remap (linkRemap) to keep it by a temporary link beside its old name');
    }
    // One link per mount the inode is open through (link() stays within a mount), made and
    // reopened through that mount's namespace: each fd comes back through its own mount.
    const key = `${s.stat.dev}:${s.stat.ino}:${mnt ?? ''}`;
    let id = this.linkByInode.get(key);
    let entry: FileEntry | null = null;
    if (id === undefined) {
      id = freshId();
      const name = this.makeLink(s, path, id, mnt);
      entry = create(FileEntrySchema, {
        type: FdTypes.REG, id, reg: { id, flags: 0, pos: 0n, fown: emptyFown(), name, mode: Number(s.stat.mode), ...(this.mntRoot && mnt !== undefined ? { mntId: mnt } : {}) },
      });
      this.linkByInode.set(key, id);
    }
    this.remaps.push(create(RemapFilePathEntrySchema, { origId: fileId, remapId: id, remapType: RemapType.LINKED }));
    return entry;
  }


  /**
   * `link_remap.<id>` in the file's old directory, or the nearest one of its parents that is
   * left; its name as the tree sees it (made through the tree's root in a mount namespace of its own).
   */
  private makeLink(s: GhostSource, path: string, id: number, mnt: number | undefined): string {
    const root = mnt === undefined ? this.mntRoot : this.mntRootOf(mnt);
    for (let dir = path.slice(0, path.lastIndexOf('/')); ; dir = dir.slice(0, dir.lastIndexOf('/'))) {
      const name = `${dir}/link_remap.${id}`;
      try {
        linkAt(s.proc, `${root}${name}`, AT_SYMLINK_FOLLOW);
        this.links.push(`${root}${name}`);
        return name;
      } catch (err) {
        if (!(err instanceof SyscallError && err.errno === ENOENT) || dir === '') {
          throw new StasisError('E_DUMP_FAILED', `Cannot dump ${s.what} of pid ${s.pid}: cannot link ${path} back as ${name}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
  }

  /**
   * A file under /proc/PID of a process that is gone: restore opens it while a short-lived
   * helper has that pid, then lets the helper die, as CRIU's PROCFS remap does.
   */
  addDeadPid(fileId: number, pid: number): void {
    this.remaps.push(create(RemapFilePathEntrySchema, { origId: fileId, remapId: pid, remapType: RemapType.PROCFS }));
  }

  /** Whether a ghost keeps inode `ino` of device `dev` (a copy of it: no longer that inode at restore). */
  holds(dev: bigint, ino: bigint): boolean {
    return this.byInode.has(`${dev}:${ino}`);
  }

  /** Removes the temporary links (the dump failed). */
  removeLinks(): void {
    for (const l of this.links.splice(0)) fs.rmSync(l, { force: true });
  }

  private read(s: GhostSource): GhostFileImage {
    const st = s.stat;
    const tv = (ns: bigint) => ({ tvSec: ns / 1_000_000_000n, tvUsec: (ns % 1_000_000_000n) / 1000n });
    const fmt = st.mode & S_IFMT;
    const isReg = fmt === S_IFREG;
    const head = create(GhostFileEntrySchema, {
      uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode), dev: kernelDev(st.dev), ino: st.ino,
      atim: tv(st.atimeNs), mtim: tv(st.mtimeNs),
      ...(isReg ? { chunks: true, size: st.size } : {}),
      ...(fmt === S_IFCHR || fmt === S_IFBLK ? { rdev: Number(st.rdev & 0xffffffffn) } : {}),
      ...(fmt === S_IFLNK ? { symlnkTarget: symlinkTarget(s) } : {}),
    });
    return { head, chunks: isReg ? readChunks(s) : [] };
  }
}

/** The target of a symlink open by O_PATH, read through the task's own fd (its /proc link names the symlink). */
function symlinkTarget(s: GhostSource): string {
  if (s.fd === undefined) throw new StasisError('E_UNSUPPORTED', `Cannot dump the ${s.what} of pid ${s.pid}: it is a deleted symlink`);
  return withTaskFd(s.pid, s.fd, readlinkFd);
}

/** The data of a regular file, as chunks between its holes. */
function readChunks(s: GhostSource): GhostFileImage['chunks'] {
  const size = s.stat.size;
  // Through the task's own link (the path is gone): a fresh open file of the same inode.
  const fd = fs.openSync(s.proc, 'r');
  const chunks: GhostFileImage['chunks'] = [];
  try {
    let off = 0n;
    for (;;) {
      const start = seekOrEnd(fd, off, SEEK_DATA);
      if (start === null || start >= size) break;
      const end = seekOrEnd(fd, start, SEEK_HOLE) ?? size;
      for (let at = start; at < end; at += BigInt(CHUNK)) {
        const len = Number(end - at < BigInt(CHUNK) ? end - at : BigInt(CHUNK));
        const buf = Buffer.alloc(len);
        let got = 0;
        while (got < len) {
          const n = fs.readSync(fd, buf, got, len - got, Number(at) + got);
          if (n === 0) break;
          got += n;
        }
        chunks.push({ entry: create(GhostChunkEntrySchema, { len: BigInt(got), off: at }), payload: buf.subarray(0, got) });
      }
      off = end;
    }
  } finally {
    fs.closeSync(fd);
  }
  return chunks;
}

/** CRIU keeps devices in the kernel's encoding (major << 20 | minor), as crit prints them. */
function kernelDev(dev: bigint): number {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return Number(BigInt.asUintN(32, (major << 20n) | minor));
}

/** lseek(SEEK_DATA / SEEK_HOLE); null past the last data (ENXIO). */
function seekOrEnd(fd: number, off: bigint, whence: number): bigint | null {
  try {
    return lseek(fd, off, whence);
  } catch (err) {
    if (err instanceof SyscallError && err.errno === ENXIO) return null;
    throw err;
  }
}
