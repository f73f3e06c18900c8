// Mount namespaces (CRIU's mountpoints-<id>.img, mnt.proto MntEntry): the tree's mounts as
// its root's /proc/PID/mountinfo shows them (paths relative to its root, as a container sees
// them), each classified by how a restore makes it again: the root from the `root` restore
// is given (runc's criu-root), a fresh filesystem (proc, sysfs, tmpfs, devpts newinstance,
// mqueue, cgroup2), a bind of a mount of the same namespace, or an external mount named by
// ext_mnt (runc's masked paths and cgroup v1 hierarchies). A tmpfs's files go into a tar
// archive, as CRIU keeps them (tmpfs-dev-<root_dev>.tar.gz.img), read from a clone of the
// tmpfs alone: the files the mounts on it hide (runc's /dev under /dev/shm, /dev/pts, its
// bound device nodes) are kept, and none of those mounts' own. What no plan fits is refused
// at dump by name; the restore is mnt-restore.ts.
import fs from 'node:fs';
import path from 'node:path';
import { tarTree } from './tar-lite.js';
import { spawnSync } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { parseMountinfo, type MountInfo } from '../proc/mountinfo.js';
import { MntEntrySchema, type MntEntry } from '../image/gen/stasis/mnt_pb.js';
import { writeImage, imagePath } from '../image/index.js';
import { StasisError } from '../errors.js';
import { restoreMounts } from './mnt-restore.js';
import { AUTO_KEY, autoExternals, pathReaches } from './mnt-external.js';
import { joinedHere, planPeers, planSharing, sharedOutside, MS_SHARED, MS_SLAVE, MS_UNBINDABLE, type Sharing } from './mnt-sharing.js';
import { CLONE_NEWNS, closeFd, inMountNsCopy, SyscallError } from '../sys/index.js';
import type { NsCheckOpts, NsDumpCtx, NsKind } from './ns-kind.js';

// CRIU's `fstype` enum (mnt.proto); a name not here is 0, restorable only as the root.
export const FSTYPE: Readonly<Record<string, number>> = {
  proc: 1, sysfs: 2, devtmpfs: 3, binfmt_misc: 4, tmpfs: 5, devpts: 6, simfs: 7, pstore: 8, securityfs: 9,
  fusectl: 10, debugfs: 11, cgroup: 12, aufs: 13, mqueue: 14, fuse: 15, auto: 16, overlay: 17, autofs: 18, tracefs: 19, cgroup2: 23,
};

// Per-mount MS_* flags as mountinfo prints them (fs/proc_namespace.c show_mnt_opts).
const MNT_FLAG: Readonly<Record<string, number>> = {
  ro: 0x1, nosuid: 0x2, nodev: 0x4, noexec: 0x8, noatime: 0x400, nodiratime: 0x800, relatime: 0x200000,
};
const MS_STRICTATIME = 0x1000000;
// Superblock flags among the super options (show_sb_opts).
const SB_FLAG: Readonly<Record<string, number>> = { ro: 0x1, sync: 0x10, mand: 0x40, dirsync: 0x80, lazytime: 0x2000000 };

/** The mount flags CRIU records: the printed ones, and strictatime where no atime mode is printed. */
export function mountFlags(options: readonly string[]): number {
  let f = 0;
  for (const o of options) f |= MNT_FLAG[o] ?? 0;
  return f & (MNT_FLAG.noatime! | MNT_FLAG.relatime!) ? f : f | MS_STRICTATIME;
}

/** What mountinfo appends to the root of a mount whose root was removed. */
export const DELETED_ROOT = '//deleted';

/** The propagation CRIU keeps in a mount's flags besides its ids (proc_parse.c parse_mnt_opt). */
const propagationFlags = (m: MountInfo) => (m.shared !== undefined ? MS_SHARED : 0) | (m.master !== undefined ? MS_SLAVE : 0) | (m.unbindable ? MS_UNBINDABLE : 0);

/** The kernel's dev_t encoding of CRIU's (criu).dev fields: major << 20 | minor. */
const kdev = (d: MountInfo['dev']) => ((d.major << 20) | d.minor) >>> 0;

/**
 * The image entries of a namespace's mounts, in CRIU's order (the reverse of mountinfo's).
 * `extMnt` maps a mountpoint to the name an external mount gets in the image (ext_mnt's
 * key:val at dump).
 */
export function mntEntries(mounts: readonly MountInfo[], extMnt: ReadonlyMap<string, string>): MntEntry[] {
  return [...mounts].reverse().map((m) => {
    const fsType = m.fsType.split('.')[0]!;
    const opts = m.superOptions.filter((o) => o !== 'rw' && o !== 'ro');
    // A devpts restored is always a new instance (CRIU adds it so).
    if (fsType === 'devpts' && !opts.includes('newinstance')) opts.push('newinstance');
    const ext = extMnt.get(m.mountPoint);
    // A bind whose root was removed since (mountinfo's `//deleted`): its path and `deleted`, as CRIU keeps it.
    const deleted = m.root.endsWith(DELETED_ROOT);
    return create(MntEntrySchema, {
      fstype: FSTYPE[fsType] ?? 0, mntId: m.mountId, rootDev: kdev(m.dev), parentMntId: m.parentId,
      flags: mountFlags(m.mountOptions) | propagationFlags(m), root: deleted ? m.root.slice(0, -DELETED_ROOT.length) || '/' : m.root, mountpoint: m.mountPoint, source: m.source,
      ...(deleted ? { deleted: true } : {}),
      options: opts.join(','), sharedId: m.shared ?? 0, masterId: m.master ?? 0,
      sbFlags: m.superOptions.reduce((f, o) => f | (SB_FLAG[o] ?? 0), 0),
      ...(ext !== undefined ? { extKey: ext } : {}),
    });
  });
}

/** The names of external mounts: by mountpoint (as an image and --ext-mount-map name them), or of each mount (a nested namespace's binds of the root's mounts, mnt-nested.ts). */
export type ExtNames = ReadonlyMap<string, string> | ((m: MountInfo) => string | undefined);

/** How a restore makes a mount again. */
export type MountPlan =
  | { how: 'root' }
  | { how: 'fresh'; fsType: string; contents?: true }
  | { how: 'bind'; from: number; pty?: number }
  | { how: 'external'; key: string }
  // A filesystem mounted again from the device --external dev[KEY]:DEVICE gives at restore (its image entry: fstype auto, source dev[KEY]).
  | { how: 'device'; key: string };

// Filesystems a restore mounts anew with their options (their contents are the kernel's).
// (A cgroup v1 mount of its hierarchy's root, mounted again with the same options, is of the
// same hierarchy: the kernel keeps one per set of controllers or name, the cgroups' own restore
// puts back its directories and tasks.)
// (binfmt_misc only with no entries registered: binfmtRefusal() checks at dump.)
const FRESH = new Set(['proc', 'sysfs', 'devpts', 'mqueue', 'cgroup2', 'cgroup', 'binfmt_misc']);

/**
 * The plan for each mount, or why one cannot be made again exactly: `hasRoot` says restore is
 * given the tree's root (the RPC's or the command line's `root`), `tmpfsFiles` what a tmpfs
 * holds: nothing but the mountpoints of other mounts, files a tar archive keeps (CRIU's
 * tmpfs-dev-N.tar.gz.img: files, directories, symlinks, device nodes, FIFOs), or why not.
 * `joined`: the peer groups whose mounts here are joined to another namespace's (mnt-sharing.ts joinedHere()).
 */
export function planMounts(mounts: readonly MountInfo[], extMnt: ExtNames, hasRoot: boolean, tmpfsFiles: (m: MountInfo) => TmpfsFiles, rootFresh = false, devKey: (m: MountInfo) => string | undefined = () => undefined, joined?: ReadonlySet<number>): { plans: Map<number, MountPlan>; order: number[]; sharing: Exclude<Sharing, { refused: string }> } | { refused: string } {
  const plans = new Map<number, MountPlan>();
  const ids = new Set(mounts.map((m) => m.mountId));
  const treeGroups = new Set(mounts.flatMap((m) => (m.shared !== undefined ? [m.shared] : [])));
  for (const m of mounts) {
    // A slave of a peer group no mount of the tree is in (its master is the host's): an external mount, bound again from the host's group.
    const extMaster = m.master !== undefined && m.propagateFrom === undefined && !treeGroups.has(m.master);
    const key = typeof extMnt === 'function' ? extMnt(m) : extMnt.get(m.mountPoint);
    if (key !== undefined) {
      // An image names an external mount by its mountpoint: mounts stacked there are all bound from the one path its name is given.
      const other = typeof extMnt === 'function' ? undefined : mounts.find((o) => o !== m && o.mountPoint === m.mountPoint && !(o.dev.major === m.dev.major && o.dev.minor === m.dev.minor && o.root === m.root && o.fsType === m.fsType));
      if (other) return { refused: `${name(m)} and ${name(other)} are stacked and show different files, and an external mount is named by its mountpoint (both have the name ${key}), so a restore would bind both from one path` };
      // (Propagation of external mounts: a peer group or master of the tree's own is made as any
      // mount's (planSharing(); sharedOutside() refuses a group the host has mounts in), a slave of
      // the host's group bound again from it. In a nested namespace (rootFresh) they are binds of the
      // root namespace's mounts, in groups of the tree's.)
      plans.set(m.mountId, { how: 'external', key });
      continue;
    }
    if (extMaster) {
      // Or a bind of an external mount with that master (a bind of a slave is a slave of its master).
      const from = mounts.find((o) => plans.get(o.mountId)?.how === 'external' && o.master === m.master && o.dev.major === m.dev.major && o.dev.minor === m.dev.minor && isUnder(m.root, o.root));
      if (!from) return { refused: `${name(m)} is a slave of peer group ${m.master}, which no mount of the tree is in; give it as an external mount (--external mnt[${m.mountPoint}]:NAME, or --ext-mount-map auto with --enable-external-masters)` };
      plans.set(m.mountId, { how: 'bind', from: from.mountId });
      continue;
    }
    if (!ids.has(m.parentId) && !(rootFresh && m.mountPoint === '/')) {
      if (m.mountPoint !== '/') return { refused: `${name(m)} hangs off mount ${m.parentId}, which the tree cannot see` };
      if (!hasRoot) return { refused: `${name(m)} is the tree's root mount, and no root (--root, RPC root) was given for it` };
      plans.set(m.mountId, { how: 'root' });
      continue;
    }
    const fsType = m.fsType.split('.')[0]!;
    // A bind: another mount of the same filesystem shows a directory above this one's root.
    const from = mounts.find((o) => o !== m && o.dev.major === m.dev.major && o.dev.minor === m.dev.minor && plans.has(o.mountId) && isUnder(m.root, o.root));
    // (A second mount of one tmpfs is a bind of it too: one filesystem, not two.)
    if (from) {
      // A pty's node in devpts exists only once the pty is made, after every mount (zdtm pty-console binds one on /dev/console).
      // A pty's node in devpts exists only once the pty is made: restore makes it before the bind (zdtm pty-console binds one on /dev/console).
      const pty = fsType === 'devpts' && m.root !== from.root && m.root !== '/ptmx' ? /^\/(\d+)$/.exec(m.root)?.[1] : undefined;
      if (fsType === 'devpts' && m.root !== from.root && m.root !== '/ptmx' && (pty === undefined || from.root !== '/')) return { refused: `${name(m)} is a bind of ${m.root} of a devpts, which stasis cannot make again` };
      plans.set(m.mountId, { how: 'bind', from: from.mountId, ...(pty !== undefined ? { pty: Number(pty) } : {}) });
      continue;
    }
    // A filesystem of a device named by --external dev[MAJOR/MINOR]:KEY (CRIU's try_resolve_ext_mount), mounted at its root.
    const dev = m.root === '/' ? devKey(m) : undefined;
    if (dev !== undefined) {
      plans.set(m.mountId, { how: 'device', key: dev });
      continue;
    }
    if (fsType === 'cgroup' && m.root !== '/') return { refused: `${name(m)} is a cgroup v1 hierarchy shown from one of its cgroups; give it as an external mount (--ext-mount-map, RPC ext_mnt), as runc does` };
    if (m.root !== '/') return { refused: `${name(m)} shows ${m.root} of a filesystem no other mount of the tree shows; give it as an external mount (--ext-mount-map, RPC ext_mnt)` };
    if (fsType === 'tmpfs') {
      // (Read from a clone of the mount alone: the files mounts on it hide are kept, what those mounts hold is theirs.)
      const files = tmpfsFiles(m);
      if (files !== 'empty' && files !== 'files') return { refused: `${name(m)} holds ${files}, which a tmpfs archive cannot keep` };
      plans.set(m.mountId, { how: 'fresh', fsType, ...(files === 'files' ? { contents: true as const } : {}) });
      continue;
    }
    if (!FRESH.has(fsType)) return { refused: `${name(m)} is a ${m.fsType} filesystem, which stasis cannot mount again; give it as an external mount (--ext-mount-map, RPC ext_mnt)` };
    plans.set(m.mountId, { how: 'fresh', fsType });
  }
  const order = mountOrder(mounts, plans);
  if (typeof order === 'string') return { refused: order };
  const sharing = planSharing(mounts, name, joined);
  return 'refused' in sharing ? sharing : { plans, order, sharing };
}

/**
 * The order a restore makes the mounts in: mountinfo's (the order they were made in), but a
 * mount after its parent and after the mount it binds, and before a sibling over a directory
 * above it: that one covers its path (zdtm overmount_with_shared_parent: a/b/c, propagated
 * on the parent after `a` covered it). What no order fits is refused.
 */
function mountOrder(mounts: readonly MountInfo[], plans: ReadonlyMap<number, MountPlan>): number[] | string {
  const ids = new Set(mounts.map((m) => m.mountId));
  const waits = new Map<number, number[]>(mounts.map((m) => [m.mountId, []]));
  for (const m of mounts) {
    const plan = plans.get(m.mountId);
    if (ids.has(m.parentId) && m.parentId !== m.mountId) waits.get(m.mountId)!.push(m.parentId);
    if (plan?.how === 'bind') waits.get(m.mountId)!.push(plan.from);
    for (const s of mounts) if (s !== m && s.parentId === m.parentId && s.mountPoint !== m.mountPoint && isUnder(m.mountPoint, s.mountPoint)) waits.get(s.mountId)!.push(m.mountId);
  }
  const done = new Set<number>(), out: number[] = [];
  while (out.length < mounts.length) {
    const next = mounts.find((m) => !done.has(m.mountId) && waits.get(m.mountId)!.every((w) => done.has(w)));
    if (!next) return `the mounts ${mounts.filter((m) => !done.has(m.mountId)).map(name).join(', ')} cover or bind each other so that no order makes them again`;
    done.add(next.mountId);
    out.push(next.mountId);
  }
  return out;
}

/** A mount as refusals name it. */
export const mountName = (m: MountInfo) => `mount ${m.mountId} at ${m.mountPoint} (${m.fsType} ${m.source}${m.root === '/' ? '' : `, ${m.root}`})`;
const name = mountName;

const isUnder = (path: string, dir: string) => dir === '/' || path === dir || path.startsWith(`${dir}/`);

/** What a tmpfs holds: 'empty' (only other mounts' mountpoints), 'files' a tar archive keeps, or the first thing it cannot keep. */
export type TmpfsFiles = 'empty' | 'files' | string;

/**
 * Runs `fn` on a detached clone of the tmpfs of mount `m` alone, made in a private copy of
 * task `pid`'s mount namespace (sys/mount-ns-copy.ts): what covers the mount there (a mount
 * stacked on it, or on a directory above it) is detached first, the mount is found again in
 * the copy by its place in the tree (the copy's mount ids are new). `fn` gets the clone's
 * root as a path of this process; `unreachable` says why no path leads to the mount.
 */
function withTmpfsClone<T>(pid: number, m: MountInfo, mounts: readonly MountInfo[], fn: (dir: string) => T): T | { unreachable: string } {
  const fd = inMountNsCopy(pid, (copy) => {
    const theirs = parseMountinfo(copy.mountinfo());
    const want = sameMount(m, mounts, theirs);
    if (typeof want === 'string') return want;
    const ancestors = new Set<number>();
    for (let a = theirs.find((o) => o.mountId === want.parentId); a && !ancestors.has(a.mountId); a = theirs.find((o) => o.mountId === a!.parentId)) ancestors.add(a.mountId);
    // The mount the path, or the longest part of it that exists, leads to (a mount over a
    // directory above it may have no such path).
    const landing = () => {
      for (let p = m.mountPoint; ; p = path.posix.dirname(p)) {
        try {
          return copy.mountIdAt(p);
        } catch (err) {
          if (!(err instanceof SyscallError && err.code === 'ENOENT') || p === '/') throw err;
        }
      }
    };
    for (let left = theirs.length; left >= 0; left--) {
      const at = landing();
      if (at === want.mountId) return copy.cloneAt(m.mountPoint);
      const top = theirs.find((o) => o.mountId === at);
      // The path ends in a mount under it: its mountpoint is gone (deleted) or moved.
      if (!top || ancestors.has(at) || top.mountPoint === '/') return `its mountpoint does not lead to it (it ends in mount ${top ? `at ${top.mountPoint}` : at})`;
      copy.detach(top.mountPoint);
    }
    return 'the mounts that cover it do not come off';
  });
  if (typeof fd === 'string') return { unreachable: fd };
  try {
    return fn(`/proc/${process.pid}/fd/${fd}`);
  } finally {
    closeFd(fd);
  }
}

/**
 * Detached clones of the tmpfs mounts of task `pid`'s namespace, made on first use in one
 * private copy of the namespace for them all: each copy's teardown waits for the kernel
 * (about 10-20 ms here), and a container's /dev, /dev/shm, /run and the like took a copy each,
 * once to plan and once to archive. A mount something covers in the copy (a mount stacked on
 * it, or over a directory above it) is cloned alone as before (withTmpfsClone, which detaches
 * what covers it). The clones see the tmpfs as it is when they are read. close() when done.
 */
export class TmpfsClones {
  private fds: Map<number, number> | undefined;
  private mounts: readonly MountInfo[] = [];
  constructor(private readonly pid: number) {}

  /** The namespace's mounts, as read (mountsOf) by the first that plans with these clones. */
  using(mounts: readonly MountInfo[]): this {
    if (this.fds === undefined) this.mounts = mounts;
    return this;
  }

  /** `fn` on the clone of mount `m` (one of the namespace's), or why no path leads to it. */
  run<T>(m: MountInfo, fn: (dir: string) => T): T | { unreachable: string } {
    this.fds ??= this.open();
    const fd = this.fds.get(m.mountId);
    return fd === undefined ? withTmpfsClone(this.pid, m, this.mounts, fn) : fn(`/proc/${process.pid}/fd/${fd}`);
  }

  close(): void {
    for (const fd of this.fds?.values() ?? []) closeFd(fd);
    this.fds = new Map();
  }

  private open(): Map<number, number> {
    const tmpfs = this.mounts.filter((m) => m.fsType === 'tmpfs');
    if (tmpfs.length < 2) return new Map();
    return inMountNsCopy(this.pid, (copy) => {
      const theirs = parseMountinfo(copy.mountinfo());
      const out = new Map<number, number>();
      try {
        for (const m of tmpfs) {
          const want = sameMount(m, this.mounts, theirs);
          if (typeof want === 'string') continue;
          let at: number;
          try {
            at = copy.mountIdAt(m.mountPoint);
          } catch {
            continue; // (withTmpfsClone says why)
          }
          if (at === want.mountId) out.set(m.mountId, copy.cloneAt(m.mountPoint));
        }
      } catch (err) {
        for (const fd of out.values()) closeFd(fd);
        throw err;
      }
      return out;
    });
  }
}

/** Mount `m` of `mounts` among `theirs` (a copy of the same tree with other ids): by its chain of mountpoints, roots and devices up to the root. */
function sameMount(m: MountInfo, mounts: readonly MountInfo[], theirs: readonly MountInfo[]): MountInfo | string {
  const keyOf = (list: readonly MountInfo[]) => {
    const byId = new Map(list.map((o) => [o.mountId, o]));
    const keys = new Map<number, string>();
    const key = (o: MountInfo, depth = 0): string => {
      const k = keys.get(o.mountId);
      if (k !== undefined) return k;
      const p = byId.get(o.parentId);
      const own = `${o.mountPoint}\0${o.root}\0${o.dev.major}:${o.dev.minor}`;
      const full = p && depth < list.length ? `${key(p, depth + 1)}\n${own}` : own;
      keys.set(o.mountId, full);
      return full;
    };
    return key;
  };
  const want = keyOf(mounts)(m), key = keyOf(theirs);
  const found = theirs.filter((o) => key(o) === want);
  return found.length === 1 ? found[0]! : `a copy of the namespace shows ${found.length} mounts where it is`;
}

/** The contents of the tmpfs of mount `m` of task `pid`, hidden files included, without what other mounts hold. */
function tmpfsFilesIn(clones: TmpfsClones, mounts: readonly MountInfo[], sockets?: Map<string, string>): (m: MountInfo) => TmpfsFiles {
  return (m) => {
    // The mountpoints of the mounts on it, relative to its root: as they are, nothing to keep (a restore makes them).
    const prefix = m.mountPoint === '/' ? '' : m.mountPoint;
    const under = new Set(mounts.filter((o) => o.parentId === m.mountId && o.mountPoint !== m.mountPoint && o.mountPoint.startsWith(`${prefix}/`)).map((o) => o.mountPoint.slice(prefix.length)));
    const covers = mounts.filter((o) => o.mountId !== m.mountId && o.mountPoint.startsWith(`${prefix}/`));
    try {
      const r = clones.run(m, (top) => {
        let seen = false;
        // Names as the bytes they are (tar keeps any name; a name that is not UTF-8 read as a
        // string would lead nowhere): a path is bytes, `rel` its name, lossy only in messages.
        const walk = (dir: Buffer, rel: string): string | undefined => {
          for (const e of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
            const r = `${rel}/${e.name.toString()}`, p = Buffer.concat([dir, SLASH, e.name]);
            if (e.isSocket()) {
              // A bound socket's file comes back when restore binds the socket again (as CRIU: tar leaves sockets out); checked once the fds are dumped.
              const st = fs.lstatSync(p);
              if (!sockets) return `a Unix socket file (${prefix}${r})`;
              // (Bound again by its path, it would be made on the mount that covers it.)
              const over = covers.find((o) => `${prefix}${r}`.startsWith(`${o.mountPoint}/`));
              if (over) return `a Unix socket file (${prefix}${r}), under the mount at ${over.mountPoint} (a restore would bind it on that mount)`;
              sockets.set(`${st.dev}:${st.ino}`, `${mountName(m)} holds a Unix socket file (${prefix}${r})`);
              continue;
            }
            if (!Buffer.from(e.name.toString()).equals(e.name) || !under.has(r) || (e.isFile() && fs.lstatSync(p).size > 0) || (!e.isFile() && !e.isDirectory())) seen = true;
            if (e.isDirectory()) {
              const why = walk(p, r);
              if (why) return why;
            }
          }
          return undefined;
        };
        return walk(Buffer.from(top), '') ?? (seen ? 'files' : 'empty');
      });
      return typeof r === 'string' ? r : `a tmpfs stasis cannot reach: ${r.unreachable}`;
    } catch (err) {
      return `files stasis cannot read (${(err as Error).message})`;
    }
  };
}

const SLASH = Buffer.from('/');

/** The mounts of the namespace task `pid` is in, as it sees them. */
export function readMounts(pid: number): MountInfo[] {
  return parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
}

/**
 * The first line of mountinfo `raw` that is not UTF-8, as a refusal naming its mount: the
 * kernel escapes only space, tab, newline and backslash (seq_escape), other bytes come as they
 * are, and the image keeps paths as protobuf strings, which are UTF-8.
 */
export function notUtf8(raw: Buffer): string | undefined {
  const strict = new TextDecoder('utf-8', { fatal: true });
  for (let at = 0; at < raw.length;) {
    const nl = raw.indexOf(0x0a, at), line = raw.subarray(at, nl < 0 ? raw.length : nl);
    at = nl < 0 ? raw.length : nl + 1;
    try {
      strict.decode(line);
    } catch {
      const [m] = parseMountinfo(line.toString());
      return `mount ${m?.mountId ?? '?'} at ${JSON.stringify(m?.mountPoint ?? line.toString())} (${m?.fsType ?? '?'} ${m?.source ?? '?'}${m && m.root !== '/' ? `, ${JSON.stringify(m.root)}` : ''}) has a path or source that is not UTF-8, which an image cannot keep`;
    }
  }
  return undefined;
}

/**
 * A bind whose root was removed comes back from an empty directory or file made for it
 * (CRIU's deleted mounts): one that shows a file with data, or another kind of file, would
 * come back as something else, and is refused; so is one that a mount over it hides.
 */
function deletedRootRefusal(pid: number, m: MountInfo): string | undefined {
  const what = `mount ${m.mountId} at ${m.mountPoint} is a bind of ${m.root.slice(0, -DELETED_ROOT.length)}, removed since`;
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(`/proc/${pid}/root${m.mountPoint}`, { bigint: true });
  } catch (err) {
    return `${what}, whose mountpoint stasis cannot look at (${(err as NodeJS.ErrnoException).code})`;
  }
  const major = Number(((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn)), minor = Number((st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn));
  if (major !== m.dev.major || minor !== m.dev.minor) return `${what}, and a mount over its mountpoint hides it`;
  if (st.isDirectory()) return undefined;
  if (!st.isFile()) return `${what}; it is not a directory or a regular file, and stasis would bring it back as an empty file`;
  if (st.size > 0n) return `${what}; it is a file with data (${st.size} bytes), which stasis would bring back empty`;
  return undefined;
}

/**
 * Why the binfmt_misc of mount `m` of task `pid` cannot be mounted again as it is, if it
 * cannot. Its instance is its user namespace's (the host's one before Linux 6.7): a fresh
 * mount shows the same one again, or a new one, empty and enabled. Only one with no entries
 * registered and enabled is the same in both; CRIU's binfmt_misc image of entries is not
 * made yet.
 */
function binfmtRefusal(pid: number, m: MountInfo): string | undefined {
  const dir = `/proc/${pid}/root${m.mountPoint}`;
  if (!pathReaches(dir, m.mountId)) return `${name(m)} is a binfmt_misc stasis cannot reach to read (a mount covers it)`;
  try {
    const entries = fs.readdirSync(dir).filter((e) => e !== 'register' && e !== 'status');
    if (entries.length > 0) return `${name(m)} is a binfmt_misc with entries registered (${entries.join(', ')}), which stasis does not dump yet`;
    const status = fs.readFileSync(`${dir}/status`, 'utf8').trim();
    if (status !== 'enabled') return `${name(m)} is a binfmt_misc that is ${status}, which stasis does not dump yet`;
  } catch (err) {
    return `${name(m)} is a binfmt_misc stasis cannot read: ${(err as Error).message}`;
  }
  return undefined;
}

/** The mounts of task `pid`'s namespace as it sees them, or why an image cannot keep them. */
export function mountsOf(pid: number): MountInfo[] | { refused: string } {
  const raw = fs.readFileSync(`/proc/${pid}/mountinfo`);
  const bad = notUtf8(raw);
  return bad ? { refused: bad } : parseMountinfo(raw.toString('utf8'));
}

/**
 * The plans of the mounts of task `pid`'s namespace, or the refusal; with the names of its
 * external mounts by mountpoint, those named at dump and those found by --ext-mount-map auto,
 * whose host paths `auto` has by mount id. A nested namespace (mnt-nested.ts) gives its binds
 * of the root namespace's mounts as its external ones, and has its own root made as any mount.
 */
export function plansOf(pid: number, opts: NsCheckOpts, nested?: ReadonlyMap<number, string>, clones?: TmpfsClones): { mounts: MountInfo[]; plans: Map<number, MountPlan>; ext: Map<string, string>; auto: Map<number, string> } | { refused: string } {
  const mounts = mountsOf(pid);
  if ('refused' in mounts) return mounts;
  const link = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  // Peer groups that span the tree's namespaces are planned with all of them.
  const spaces = opts.mntSpaces ?? [];
  let joined: Set<number> | undefined;
  if (spaces.length > 1) {
    const all = [];
    for (const s of spaces) {
      const theirs = s.link === link ? mounts : mountsOf(s.pid);
      if ('refused' in theirs) return theirs;
      all.push({ ns: s.link, mounts: theirs });
    }
    const cross = planPeers(all, name);
    if ('refused' in cross) return cross;
    joined = joinedHere(cross, link);
  }
  const auto = opts.extAuto && !nested ? autoExternals(mounts, readMounts(process.pid), opts.extAuto, opts.extMounts, pathReaches) : new Map<number, string>();
  const ext = new Map<string, string>(nested ? [] : opts.extMounts);
  for (const m of mounts) if (auto.has(m.mountId)) ext.set(m.mountPoint, AUTO_KEY);
  // (Only a filesystem stasis cannot mount by itself, as CRIU: FSTYPE__UNSUPPORTED.)
  const devKey = (m: MountInfo) => (FSTYPE[m.fsType.split('.')[0]!] === undefined ? opts.extDevs?.get(`${m.dev.major}/${m.dev.minor}`) : undefined);
  // (The caller's clones are its to close; else this call's are closed before it returns.)
  const own = clones ? undefined : new TmpfsClones(pid);
  let p: ReturnType<typeof planMounts>;
  try {
    p = planMounts(mounts, nested ? (m) => nested.get(m.mountId) : ext, nested ? false : opts.hasRoot, tmpfsFilesIn((clones ?? own!).using(mounts), mounts, opts.tmpfsSockets), nested !== undefined, devKey, joined);
  } finally {
    own?.close();
  }
  if ('refused' in p) return p;
  for (const m of mounts) {
    const why = m.root.endsWith(DELETED_ROOT) ? deletedRootRefusal(pid, m) : p.plans.get(m.mountId)?.how === 'fresh' && m.fsType === 'binfmt_misc' ? binfmtRefusal(pid, m) : undefined;
    if (why) return { refused: why };
  }
  const outside = sharedOutside(mounts, new Set([link, ...spaces.map((s) => s.link)]), name);
  if (outside) return { refused: outside };
  return { mounts, plans: p.plans, ext, auto };
}

/** Archives the files of the tmpfs of mount `m` of task `pid` into `file`, those other mounts hide included, without what they hold. */
function archiveTmpfs(pid: number, m: MountInfo, clones: TmpfsClones, file: string): void {
  fs.writeFileSync(file, '', { mode: 0o600 }); // every image is 0600
  const fail = (why: string) => new StasisError('E_DUMP_FAILED', `Cannot archive the tmpfs at ${m.mountPoint} of pid ${pid}: ${why}`);
  const r = clones.run(m, (dir) => {
    // A plain tree is written here (ns/tar-lite.ts), the same archive tar would make of it; else tar.
    let gz: Buffer | undefined;
    try {
      gz = tarTree(dir);
    } catch {
      gz = undefined;
    }
    if (gz) {
      fs.writeFileSync(file, gz);
      return { status: 0, stderr: '', error: undefined };
    }
    return spawnSync('tar', ['--create', '--gzip', '--one-file-system', '--numeric-owner', '--preserve-permissions', '--sparse', '--directory', dir, '--file', file, '.'], { encoding: 'utf8' });
  });
  if ('unreachable' in r) throw fail(r.unreachable);
  if (r.status !== 0) throw fail(`tar ${r.error ? r.error.message : `exited with ${r.status}: ${r.stderr.trim()}`}`);
}

export const mntNs = {
  name: 'mnt',
  flag: CLONE_NEWNS,
  check: (pid, _tree, opts) => {
    // Its mounts would be made by a root that is not yet in the user namespace (restore.ts's holder).
    if (fs.readlinkSync(`/proc/${pid}/ns/user`) !== fs.readlinkSync('/proc/self/ns/user')) return 'it is under a user namespace of the tree\'s own, and stasis cannot restore a mount namespace there yet';
    const p = plansOf(pid, opts);
    return 'refused' in p ? p.refused : undefined;
  },
  dump: (ctx, pid, id) => dumpMounts(ctx, pid, id),
  restore: restoreMounts,
} satisfies NsKind;

/** Writes mountpoints-<id>.img of task `pid`'s namespace, and its tmpfs archives. */
export function dumpMounts(ctx: NsDumpCtx, pid: number, id: number, nested?: ReadonlyMap<number, string>): void {
  // One copy of the namespace for the plan's look at its tmpfs mounts and their archives.
  const clones = new TmpfsClones(pid);
  try {
    dumpPlanned(ctx, pid, id, clones, nested);
  } finally {
    clones.close();
  }
}

function dumpPlanned(ctx: NsDumpCtx, pid: number, id: number, clones: TmpfsClones, nested?: ReadonlyMap<number, string>): void {
  const p = plansOf(pid, ctx.mounts, nested, clones);
  if ('refused' in p) throw new StasisError('E_UNSUPPORTED', `Cannot dump mnt namespace ${id} of pid ${pid}: ${p.refused}`);
  // (A nested namespace's binds of the root's mounts are plain entries: CRIU finds binds by their device.)
  const entries = mntEntries(p.mounts, nested ? new Map() : p.ext);
  // An autodetected external mount keeps where stasis saw it as its source, as CRIU's image does.
  for (const e of entries) e.source = p.auto.get(e.mntId) ?? e.source;
  // A device's filesystem as CRIU keeps it: fstype auto, its own type as fsname, the key as source.
  for (const e of entries) {
    const plan = p.plans.get(e.mntId);
    if (plan?.how !== 'device') continue;
    e.fsname = p.mounts.find((m) => m.mountId === e.mntId)!.fsType;
    e.fstype = FSTYPE.auto!;
    e.source = `dev[${plan.key}]`;
  }
  ctx.note(writeImage(ctx.imagesDir, 'mountpoints', id, entries));
  for (const m of p.mounts) {
    const plan = p.plans.get(m.mountId);
    // (An empty tmpfs too: CRIU 4.2 refuses to restore a tmpfs without its archive.)
    if (plan?.how !== 'fresh' || (!plan.contents && plan.fsType !== 'tmpfs')) continue;
    const file = ctx.note(imagePath(ctx.imagesDir, 'tmpfs-dev', kdev(m.dev)));
    archiveTmpfs(pid, m, clones, file);
  }
  const count = (how: MountPlan['how']) => [...p.plans.values()].filter((x) => x.how === how).length;
  ctx.log.info(`mnt namespace ${id}: ${p.mounts.length} mounts (root ${count('root')}, new ${count('fresh')}, bind ${count('bind')}, ${nested ? 'of the root\'s namespace' : 'external'} ${count('external')})`);
}
