// Ghost files at restore: each ghost of the image is recreated once, in the directory its
// file was in, from ghost-file-<hex id>.img; every regular file remapped to it is opened
// from there; once all files are open the ghosts are unlinked, so the tasks hold deleted
// files with the contents, size, mode and times they had. Where the original name is free
// the ghost is opened under it (the fd's link reads `/dir/name (deleted)` as before);
// where another file took the name (a replaced path) under a temporary one beside it.
// Directories, devices, FIFOs and symlinks are made again by mkdir, mknod and symlink; a
// directory the file was in that is gone too is made for the time of the opening.
// A LINKED remap names the regular file entry of the link the dump made (`link_remap.<id>`):
// the file is opened through it, under its old name where that is free, and once the opening
// succeeded both names are removed (a failed restore keeps the link for another attempt).
// A PROCFS remap names a dead pid: a helper process is made with it while the files under
// /proc/PID are opened and the tasks entered them (fchdir needs the process), and killed
// after, so the tasks hold files of a process gone again.
// In a mount namespace of the tree's own, the image's paths are the tree's: every name is
// made, opened and removed through its root (/proc/ROOT/root of the restored root task, in the
// mounts mnt-restore.ts made), as CRIU does from its mount namespace's root fd; a ghost on a
// mount of a nested namespace through that namespace's helper's root.
// A ghost on a mount read-only per mount (its filesystem writable: zdtm ghost_on_rofs) is made
// and removed through a detached clone of that mount made writable (CRIU remounts the mount
// read-write for the time instead), and opened by its path through the read-only mount, so the
// task's fd is on that mount; the mount itself is never changed.
import fs from 'node:fs';
import path from 'node:path';
import { readImage, imageExists, type GhostFileImage } from '../image/index.js';
import { isFieldSet } from '@bufbuild/protobuf';
import { GhostFileEntrySchema, type GhostFileEntry } from '../image/gen/stasis/ghost-file_pb.js';
import { SAME_OWNERS, ghostOwners, translateOwners, type Owners } from './owners.js';
import { mknodAt, cloneMount, closeFd, inMountNsCopy, makeMountWritable } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { MntEntry } from '../image/gen/stasis/mnt_pb.js';
import { fsPathOf, treePathOf } from './mount-paths.js';
import { RemapType } from '../image/gen/stasis/remap-file-path_pb.js';
import { RegFileEntrySchema, type RegFileEntry } from '../image/gen/stasis/regfile_pb.js';

interface Made {
  /** The name the files are opened by. */
  path: string;
  dev: bigint;
  ino: bigint;
  /** Removed with rmdir. */
  dir: boolean;
  /** The name it is removed by, where not `path` (through a writable clone of a read-only mount). */
  remove?: string;
}

const O_ACCMODE = 0o3, O_WRONLY = 0o1, O_APPEND = 0o2000;
const S_IFMT = 0o170000n, S_IFREG = 0o100000n, S_IFDIR = 0o040000n, S_IFLNK = 0o120000n, S_IFIFO = 0o010000n, S_IFCHR = 0o020000n, S_IFBLK = 0o060000n;

export class GhostRestorer {
  private remaps: Map<number, { id: number; type: RemapType }> | null = null;
  private readonly made = new Map<number, Made>();
  /** Names of linked remaps in use: removed once every file is open. */
  private readonly links = new Map<number, Made[]>();
  /** Directories made for ghosts whose directory was removed too: removed after them. */
  private readonly parents: Made[] = [];

  /** The mount and image path of the file each ghost was made for, by ghost id. */
  private readonly madeOn = new Map<number, { mntId: number; orig: string }>();
  /** Other names of ghosts, linked into another directory through a mount showing both (removed with them). */
  private readonly extra: Made[] = [];
  private mounts: Map<number, MntEntry> | undefined;

  /** Writable clones of read-only mounts ghosts were made through (fds), closed once the ghosts are removed. */
  private readonly clones: number[] = [];

  /** Helpers holding dead pids for PROCFS remaps, by pid: their release. */
  private readonly held = new Map<number, () => void>();

  /**
   * Where the tree's paths are, seen from stasis: '' in stasis's own mounts, the restored
   * root's /proc/PID/root in a mount namespace of the tree's own. Every path returned is under it.
   */
  root = '';

  /** Where the paths of files on mount `mntId` of a nested mount namespace are (its helper's /proc/PID/root). */
  rootOf?: (mntId: number) => string | undefined;

  /** `holdPid` makes a process with a pid (for a file of /proc/PID), returning what ends it. */
  constructor(readonly imagesDir: string, private readonly holdPid?: (pid: number) => () => void, private readonly owners: Owners = SAME_OWNERS) {}

  /** The remap of a regular file, if any. */
  remapOf(fileId: number): { id: number; type: RemapType } | undefined {
    if (!this.remaps) {
      this.remaps = new Map();
      if (imageExists(this.imagesDir, 'remap-fpath', undefined)) {
        for (const r of readImage(this.imagesDir, 'remap-fpath', undefined)) {
          const type = r.remapType ?? RemapType.LINKED;
          if (type !== RemapType.GHOST && type !== RemapType.LINKED && type !== RemapType.PROCFS) {
            throw new StasisError('E_UNSUPPORTED', `remap-fpath.img remaps file ${r.origId} with type ${type}, which stasis does not know`);
          }
          this.remaps.set(r.origId, { id: r.remapId, type });
        }
      }
    }
    return this.remaps.get(fileId);
  }

  /** The ghost a regular file is remapped to, if any. */
  ghostOf(fileId: number): number | undefined {
    const r = this.remapOf(fileId);
    return r?.type === RemapType.GHOST ? r.id : undefined;
  }

  /** The path to open regular file `e` by, when it is remapped (undefined: its own name). */
  pathOf(e: FileEntry, files: Map<number, FileEntry>): string | undefined {
    const r = this.remapOf(e.id);
    const orig = e.reg?.name ?? '';
    if (!r) return undefined;
    if (r.type === RemapType.GHOST) return this.pathFor(r.id, e.id, orig, (e.reg?.mntId !== undefined ? this.rootOf?.(e.reg.mntId) : undefined) ?? this.root, e.reg?.mntId);
    if (r.type === RemapType.PROCFS) {
      // /proc/PID of a process gone: opened while a helper has the pid, which then ends.
      if (!this.held.has(r.id)) {
        if (!this.holdPid) throw new StasisError('E_UNSUPPORTED', `Cannot reopen ${orig} (file ${e.id}): it is a file of pid ${r.id}, which is gone`);
        this.held.set(r.id, this.holdPid(r.id));
      }
      return `${this.root}${orig}`;
    }
    const linked = files.get(r.id)?.reg, linkName = linked?.name;
    if (!linked || linkName === undefined) throw new StasisError('E_CORRUPT', `File ${e.id} is remapped to file ${r.id}, which is not a regular file of the image`);
    const rootOf = (mntId: number | undefined) => (mntId !== undefined ? this.rootOf?.(mntId) : undefined) ?? this.root;
    // CRIU writes the link's entry with no mnt_id: its name is the tree's as the namespace of the
    // file's own mount sees it (rfi_remap takes the file's mnt_id for the link's), which for a
    // file of a nested mount namespace is not the root's.
    const own = e.reg && mntOf(e.reg), linkMnt = mntOf(linked) ?? own;
    const link = `${rootOf(linkMnt)}${linkName}`, at = `${rootOf(own)}${orig}`;
    const where = linkMnt === undefined ? '' : ` (through mount ${linkMnt}${mntOf(linked) === undefined ? ', the file\'s own' : ''})`;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(link, { bigint: true });
    } catch (err) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot reopen ${orig} (file ${e.id}): its temporary link ${linkName}${where}, at ${link}, is gone (${(err as NodeJS.ErrnoException).code})`, { cause: err });
    }
    // Another file under the link's name would be restored in its place: its mode and size must
    // be the file's, as CRIU's open_path checks (but a log's size: O_WRONLY | O_APPEND, should_check_size).
    const wantMode = e.reg && isFieldSet(e.reg, RegFileEntrySchema.field.mode) ? e.reg.mode : undefined;
    const appends = e.reg !== undefined && (e.reg.flags & (O_ACCMODE | O_APPEND)) === (O_WRONLY | O_APPEND);
    const wantSize = e.reg && !appends && isFieldSet(e.reg, RegFileEntrySchema.field.size) ? e.reg.size : undefined;
    const wrong = [
      ...(wantMode !== undefined && st.mode !== BigInt(wantMode) ? [`mode 0${st.mode.toString(8)}, not 0${wantMode.toString(8)}`] : []),
      ...(wantSize !== undefined && st.size !== wantSize ? [`${st.size} bytes, not ${wantSize}`] : []),
    ];
    if (wrong.length) throw new StasisError('E_RESTORE_FAILED', `Cannot reopen ${orig} (file ${e.id}): its temporary link ${linkName}${where} is another file: ${wrong.join(', ')}`);
    const names = this.links.get(r.id) ?? [{ path: link, dev: st.dev, ino: st.ino, dir: false }];
    this.links.set(r.id, names);
    const under = names.find((n) => n.path === at);
    if (under) return at;
    try {
      fs.linkSync(link, at);
      names.push({ path: at, dev: st.dev, ino: st.ino, dir: false });
      return at;
    } catch {
      return link; // the old name is taken: the file is opened by its temporary one
    }
  }

  /** Once every file is open: removes the names linked remaps were opened by. */
  unlinkLinks(): void {
    for (const names of this.links.values()) unlinkOurs(names);
    this.links.clear();
  }

  /** The path to open file `fileId` (named `orig` in the image, on mount `mntId`) by: its ghost, created on first use. */
  pathFor(ghostId: number, fileId: number, orig: string, root = this.root, mntId?: number): string {
    const got = this.made.get(ghostId);
    if (got) {
      // Through another mount (a nested namespace's) of the directory it was made in: opened there.
      const at = path.join(path.dirname(`${root}${orig}`), path.basename(got.path));
      if (at === got.path) return at;
      if (sameInode(at, got)) return at;
      // Through a bind of another directory: linked into it through a mount showing both.
      const linked = this.linkThrough(ghostId, got, orig, root, mntId);
      if (linked !== undefined) return linked;
      throw new StasisError('E_RESTORE_FAILED', `Cannot reopen the deleted file ${orig} (file ${fileId}): the ghost made at ${got.path} does not show at ${at}, and no mount of the image shows both directories`);
    }
    const img = readImage(this.imagesDir, 'ghost-file', ghostId);
    // Its owner as stasis sets it (the image holds it as the tree's user namespace sees it).
    translateOwners(this.owners, ghostOwners([{ id: ghostId, head: img.head }]), 'E_RESTORE_FAILED');
    const fail = (err: unknown) =>
      new StasisError('E_RESTORE_FAILED', `Cannot recreate the deleted file ${orig} (file ${fileId}): ${(err as Error).message}`, { cause: err });
    let made: Made;
    try {
      const at = `${root}${orig}`, dir = path.dirname(at);
      // Where the names are made: the directory, or its writable view on a read-only mount.
      const wdir = this.writableDir(dir, root);
      // A directory removed with the file is made for the time of the restore too.
      this.makeParents(wdir);
      const tmp = path.join(wdir, `.${path.basename(at)}.stasis-ghost-${ghostId.toString(16)}-${process.pid}`);
      made = (BigInt(img.head.mode) & S_IFMT) === S_IFREG ? makeRegular(img, path.join(wdir, path.basename(at)), tmp) : makeNode(img.head, path.join(wdir, path.basename(at)), tmp);
      if (wdir !== dir) made = { ...made, remove: made.path, path: path.join(dir, path.basename(made.path)) };
    } catch (err) {
      throw fail(err);
    }
    this.made.set(ghostId, made);
    if (mntId !== undefined) this.madeOn.set(ghostId, { mntId, orig });
    return made.path;
  }

  /**
   * Links ghost `got` (made for a file on mount `madeOn`) beside `orig` on mount `mntId`, whose
   * directory is another one of the filesystem: through a mount of the image that shows both
   * (CRIU's rfi_remap goes through the mount the binds are of); returns the path of the new
   * name through `mntId` (reached from `root`), or undefined where no mount shows both.
   */
  private linkThrough(ghostId: number, got: Made, orig: string, root: string, mntId: number | undefined): string | undefined {
    const on = this.madeOn.get(ghostId);
    const mounts = this.imageMounts();
    const m1 = on && mounts.get(on.mntId), m2 = mntId === undefined ? undefined : mounts.get(mntId);
    if (!on || !m1 || !m2 || m1.rootDev !== m2.rootDev) return undefined;
    const ghostFs = fsPathOf(m1, path.posix.join(path.posix.dirname(on.orig), path.basename(got.path)));
    const wantFs = fsPathOf(m2, orig);
    if (ghostFs === undefined || wantFs === undefined) return undefined;
    for (const t of mounts.values()) {
      if (t.rootDev !== m1.rootDev || t.root.endsWith('//deleted')) continue;
      const from = treePathOf(t, ghostFs), to = treePathOf(t, wantFs);
      if (from === undefined || to === undefined) continue;
      const base = this.rootOf?.(t.mntId) ?? this.root;
      // The mount's path may lead elsewhere (a mount over it): only our ghost is linked.
      if (!sameInode(`${base}${from}`, got)) continue;
      const tmpName = `.${path.posix.basename(to)}.stasis-ghost-${ghostId.toString(16)}-${process.pid}`;
      for (const name of [path.posix.basename(to), tmpName]) {
        const link = path.posix.join(path.posix.dirname(`${base}${to}`), name);
        try {
          fs.linkSync(`${base}${from}`, link);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
          throw new StasisError('E_RESTORE_FAILED', `Cannot link the deleted file ${orig} from ${from} to ${to} through mount ${t.mntId}: ${(err as Error).message}`, { cause: err });
        }
        this.extra.push({ path: link, dev: got.dev, ino: got.ino, dir: false });
        const at = path.join(path.dirname(`${root}${orig}`), name);
        if (!sameInode(at, got)) throw new StasisError('E_RESTORE_FAILED', `Cannot reopen the deleted file ${orig}: linked as ${to} through mount ${t.mntId}, it does not show at ${at}`);
        return at;
      }
    }
    return undefined;
  }

  /** The image's mounts of every mount namespace, by id (read once). */
  private imageMounts(): Map<number, MntEntry> {
    if (!this.mounts) {
      this.mounts = new Map();
      for (const f of fs.readdirSync(this.imagesDir)) {
        const id = /^mountpoints-(\d+)\.img$/.exec(f)?.[1];
        if (id !== undefined) for (const e of readImage(this.imagesDir, 'mountpoints', Number(id))) this.mounts.set(e.mntId, e);
      }
    }
    return this.mounts;
  }

  /**
   * `dir` (under `root`), or where its mount is read-only per mount, the same directory through
   * a detached clone of that mount made writable: the path of the directory there. (The clone
   * is taken in a copy of the tree's mount namespace, whose mounts only its tasks may clone.)
   */
  private writableDir(dir: string, root: string): string {
    let base = dir;
    while (!fs.existsSync(base)) base = path.dirname(base);
    try {
      fs.accessSync(base, fs.constants.W_OK);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EROFS') return dir;
    }
    const pid = /^\/proc\/(\d+)\/root$/.exec(root)?.[1];
    const inTree = base.slice(root.length) || '/';
    const fd = root === '' ? cloneMount(base) : pid !== undefined ? inMountNsCopy(Number(pid), (copy) => copy.cloneAt(inTree)) : undefined;
    if (fd === undefined) throw new StasisError('E_RESTORE_FAILED', `the mount of ${inTree} is read-only, and stasis reaches it through ${root}, not a task's root`);
    this.clones.push(fd);
    makeMountWritable(fd);
    return path.join(`/proc/self/fd/${fd}`, path.relative(base, dir));
  }

  /** Makes the missing directories down to `dir`, remembering them for unlinkAll. */
  private makeParents(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(d, 0o755);
      const st = fs.statSync(d, { bigint: true });
      this.parents.push({ path: d, dev: st.dev, ino: st.ino, dir: true });
    }
  }

  /** Unlinks every ghost (their files are open by now); only names still leading to our inode. */
  unlinkAll(): void {
    unlinkOurs([...this.made.values(), ...this.extra.splice(0)]);
    this.made.clear();
    // The old names linked remaps took for the opening; their own links stay (the restore failed, or they go in unlinkLinks).
    for (const names of this.links.values()) unlinkOurs(names.slice(1));
    for (const names of this.links.values()) names.splice(1);
    unlinkOurs(this.parents.splice(0).reverse());
    for (const fd of this.clones.splice(0)) closeFd(fd);
  }

  /** The helpers holding dead pids, handed over: they must live until the tasks entered their directories. */
  takeHelpers(): (() => void)[] {
    const out = [...this.held.values()];
    this.held.clear();
    return out;
  }
}

/** A regular file with its contents, made under a temporary name, then linked to its own where that is free. */
function makeRegular(img: GhostFileImage, orig: string, tmp: string): Made {
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  let made: Made;
  try {
    const h = img.head;
    if (h.chunks) {
      for (const c of img.chunks) writeAll(fd, c.payload, Number(c.entry.off));
    } else if (img.contents) {
      writeAll(fd, img.contents, 0);
    }
    // CRIU writes a small ghost's contents raw, with no size (an unset field decodes as 0n).
    const size = isFieldSet(h, GhostFileEntrySchema.field.size) ? h.size : BigInt(img.contents?.length ?? 0);
    fs.ftruncateSync(fd, Number(size));
    fs.fchownSync(fd, h.uid, h.gid);
    fs.fchmodSync(fd, h.mode & 0o7777);
    fs.futimesSync(fd, secs(h.atim), secs(h.mtim));
    const st = fs.fstatSync(fd, { bigint: true });
    made = { path: tmp, dev: st.dev, ino: st.ino, dir: false };
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  // link() never replaces: it fails where the name is taken (the path was replaced).
  try {
    fs.linkSync(tmp, orig);
    fs.rmSync(tmp);
    made.path = orig;
  } catch {
    /* keep the temporary name */
  }
  return made;
}

/** A directory, device, FIFO or symlink, under its own name where that is free, else a temporary one. */
function makeNode(h: GhostFileEntry, orig: string, tmp: string): Made {
  const fmt = BigInt(h.mode) & S_IFMT;
  const make = (at: string) => {
    if (fmt === S_IFDIR) fs.mkdirSync(at, 0o700);
    else if (fmt === S_IFLNK) fs.symlinkSync(h.symlnkTarget ?? '', at);
    else if (fmt === S_IFIFO || fmt === S_IFCHR || fmt === S_IFBLK) mknodAt(at, (h.mode & ~0o7777) | 0o600, h.rdev ?? 0);
    else throw new StasisError('E_CORRUPT', `its kind (mode 0${h.mode.toString(8)}) cannot be made again`);
  };
  let at = orig;
  try {
    make(at);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
    at = tmp;
    make(at);
  }
  try {
    fs.lchownSync(at, h.uid, h.gid);
    if (fmt !== S_IFLNK) fs.chmodSync(at, h.mode & 0o7777);
    fs.lutimesSync(at, secs(h.atim), secs(h.mtim));
  } catch (err) {
    unlinkOurs([{ path: at, ...ids(at), dir: fmt === S_IFDIR }]);
    throw err;
  }
  return { path: at, ...ids(at), dir: fmt === S_IFDIR };
}

/** The mount a regular file entry names, if it names one (mnt_id unset reads -1). */
const mntOf = (r: RegFileEntry): number | undefined => (isFieldSet(r, RegFileEntrySchema.field.mntId) && r.mntId >= 0 ? r.mntId : undefined);

function sameInode(at: string, m: Made): boolean {
  try {
    const st = fs.statSync(at, { bigint: true });
    return st.dev === m.dev && st.ino === m.ino;
  } catch {
    return false;
  }
}

function ids(at: string): { dev: bigint; ino: bigint } {
  const st = fs.lstatSync(at, { bigint: true });
  return { dev: st.dev, ino: st.ino };
}

const secs = (t: { tvSec: bigint; tvUsec: bigint } | undefined) => (t ? Number(t.tvSec) + Number(t.tvUsec) / 1e6 : Date.now() / 1000);

function unlinkOurs(names: Made[]): void {
  for (const m of names) {
    const at = m.remove ?? m.path;
    try {
      const st = fs.lstatSync(at, { bigint: true });
      if (st.dev !== m.dev || st.ino !== m.ino) continue;
      if (m.dir) fs.rmdirSync(at);
      else fs.unlinkSync(at);
    } catch {
      /* gone already, or not empty */
    }
  }
}

function writeAll(fd: number, data: Uint8Array, at: number): void {
  for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done, data.length - done, at + done);
}
