// Mount namespaces of a tree other than its root's (a task that unshared CLONE_NEWNS, or was
// cloned with it: zdtm's mntns_* tests). CRIU writes one mountpoints-<id>.img per namespace,
// and each task's ids-<pid>.img names its own; mount ids are the kernel's, one count for all
// namespaces. A nested namespace began as a copy of another: a mount of it whose filesystem
// (device) a mount of the root's namespace shows is that filesystem still, and is made again
// as a bind of the root namespace's mount (one whose root is above its own, wherever it is):
// a fresh one would be another filesystem. Its other mounts are planned as the root's
// (mnt.ts), its own root too (a pivot_root into a tmpfs), with no --root.
// At restore, each is built by a helper the restored root clones with CLONE_NEWNS while the
// root's mounts are still in its yard, before its pivot_root (mnt-restore.ts), in a yard of its
// own as the root does. Its binds of the root's mounts are made as CRIU's mount-v2 makes them:
// a detached clone (open_tree(2) OPEN_TREE_CLONE) of the root's mount alone, taken by the root
// through stasis's fd on it, which reaches it where other mounts cover it (zdtm mntns_remap),
// and of the directory below its root in that clone (no mount of the root's on the way), moved
// into place by the helper (move_mount(2)). The tasks enter their namespace as stubs, before
// they clone (create-tree.ts, setns through a pidfd of the helper); the helpers are killed and
// reaped by the root once the tree is made.
import type { Injector } from '../sys/index.js';
import type { MountInfo } from '../proc/mountinfo.js';
import { readImage } from '../image/index.js';
import { StasisError } from '../errors.js';
import type { NsCheckOpts, NsDumpCtx, NsRestoreCtx } from './ns-kind.js';
import { mountsOf, plansOf, dumpMounts } from './mnt.js';
import { asMountInfo, restoreMounts } from './mnt-restore.js';

/** A mount of a nested namespace that shows a filesystem of the root's namespace: the root's mount it binds, and the path below that mount's root. */
export interface OuterBind {
  from: MountInfo;
  rel: string;
}

const isUnder = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(`${dir}/`);
const name = (m: MountInfo) => `mount ${m.mountId} at ${m.mountPoint} (${m.fsType} ${m.source}${m.root === '/' ? '' : `, ${m.root}`})`;

/**
 * The mounts of `mounts` (a nested namespace) that bind a filesystem of `outer` (the root's
 * namespace), by mount id, or why one cannot be made so: no mount of the root's shows a
 * directory above the one it shows.
 */
export function outerBinds(mounts: readonly MountInfo[], outer: readonly MountInfo[]): { binds: Map<number, OuterBind> } | { refused: string } {
  const binds = new Map<number, OuterBind>();
  for (const m of mounts) {
    const same = outer.filter((o) => o.dev.major === m.dev.major && o.dev.minor === m.dev.minor);
    if (!same.length) continue;
    // (Any of them: the restore clones it alone, where it is and whatever covers it.)
    const o = same.find((x) => isUnder(m.root, x.root));
    if (!o) return { refused: `${name(m)} shows a directory of a filesystem whose mounts in the root's mount namespace show only directories below it (${same.map((x) => `${x.mountId} at ${x.mountPoint}, ${x.root}`).join('; ')})` };
    binds.set(m.mountId, { from: o, rel: o.root === '/' ? (m.root === '/' ? '' : m.root) : m.root.slice(o.root.length) });
  }
  return { binds };
}

/** The key a nested namespace's bind of the root's mount `b` has among its external mounts. */
const keyOf = (b: OuterBind) => `mount ${b.from.mountId} of the root's mount namespace${b.rel ? ` (${b.rel})` : ''}`;
const keys = (binds: ReadonlyMap<number, OuterBind>) => new Map([...binds].map(([id, b]) => [id, keyOf(b)]));

/** A mount namespace of the tree that is not its root's: its link and the first task in it. */
export interface NestedMntNs {
  link: string;
  pid: number;
}

/** Why a nested namespace cannot be dumped, or undefined (checked before anything is written). */
export function checkNestedMnt(rootPid: number, nested: readonly NestedMntNs[], opts: NsCheckOpts): string | undefined {
  const outer = mountsOf(rootPid);
  if ('refused' in outer) return outer.refused;
  // A filesystem two nested namespaces show and the root's does not (one nested in another) would come back as two.
  const seen = new Map<string, { link: string; m: MountInfo }>();
  for (const n of nested) {
    const mounts = mountsOf(n.pid);
    if ('refused' in mounts) return `mnt namespace ${n.link} of pid ${n.pid}: ${mounts.refused}`;
    const b = outerBinds(mounts, outer);
    if ('refused' in b) return `mnt namespace ${n.link} of pid ${n.pid}: ${b.refused}`;
    for (const m of mounts) {
      if (b.binds.has(m.mountId)) continue;
      const dev = `${m.dev.major}:${m.dev.minor}`, other = seen.get(dev);
      if (other && other.link !== n.link) return `mnt namespace ${n.link} of pid ${n.pid}: ${name(m)} shows the filesystem of ${name(other.m)} of mnt namespace ${other.link}, which the root's namespace does not show; stasis makes a nested namespace's binds only of the root namespace's mounts`;
      seen.set(dev, { link: n.link, m });
    }
    const p = plansOf(n.pid, opts, keys(b.binds));
    if ('refused' in p) return `mnt namespace ${n.link} of pid ${n.pid}: ${p.refused}`;
  }
  return undefined;
}

/** Writes mountpoints-<id>.img (and tmpfs archives) of each nested namespace; `id` numbers them as ids-<pid>.img does. */
export function dumpNestedMnt(ctx: NsDumpCtx, rootPid: number, nested: readonly NestedMntNs[], id: (link: string) => number): void {
  const outer = mountsOf(rootPid);
  if ('refused' in outer) throw new StasisError('E_UNSUPPORTED', `Cannot dump the mounts of pid ${rootPid}: ${outer.refused}`);
  for (const n of nested) {
    const mounts = mountsOf(n.pid);
    const b = 'refused' in mounts ? mounts : outerBinds(mounts, outer);
    if ('refused' in b) throw new StasisError('E_UNSUPPORTED', `Cannot dump mnt namespace ${id(n.link)} of pid ${n.pid}: ${b.refused}`);
    dumpMounts(ctx, n.pid, id(n.link), keys(b.binds));
  }
}

/** A nested namespace made at restore: its helper (stasis's pid, and the pid the tree's tasks see it by). */
export interface MadeMntNs {
  id: number;
  hostPid: number;
  vpid: number;
}

/** What the root's mount restore needs to make the nested namespaces (NsRestoreCtx.nestedMnt). */
export interface NestedMntRestore {
  /** Their ids, in the tree's order. */
  ids: readonly number[];
  /** Clones a helper from the root (by its injector) in a new mount namespace. */
  clone: (inj: Injector) => { hostPid: number; vpid: number; code: bigint };
  /** Told of each helper as soon as it exists (it is killed with the tree on failure). */
  made: (ns: MadeMntNs) => void;
}

/** A detached clone the restored root holds: its path (`/proc/PID/fd/N` of the root), and its release. */
export interface HeldClone {
  path: string;
  close: () => void;
}

/**
 * With the root namespace `rootId` built (not yet pivoted into), makes each nested namespace
 * by a helper of its own cloned through `inj`; `cloneOuter(mntId, rel)` gives a detached
 * clone of what directory `rel` below the root of the root namespace's mount `mntId` shows.
 */
export function restoreNestedMnt(ctx: NsRestoreCtx, nested: NestedMntRestore, rootId: number, inj: Injector, cloneOuter: (mntId: number, rel: string) => HeldClone): void {
  const outer = readImage(ctx.imagesDir, 'mountpoints', rootId).map(asMountInfo);
  for (const id of nested.ids) {
    const mounts = readImage(ctx.imagesDir, 'mountpoints', id).map(asMountInfo);
    const b = outerBinds(mounts, outer);
    if ('refused' in b) throw new StasisError('E_UNSUPPORTED', `Cannot restore mnt namespace ${id}: ${b.refused}`);
    const h = nested.clone(inj);
    nested.made({ id, hostPid: h.hostPid, vpid: h.vpid });
    // One clone for each bind (a move_mount takes it), taken as the helper makes the bind (the
    // kernel numbers mounts, and lists them, in the order they are made), which reaches it
    // through the root's /proc/PID/fd (its /proc is still stasis's).
    const clones: HeldClone[] = [];
    try {
      const binds = new Map([...b.binds].map(([mntId, x]) => [mntId, { key: keyOf(x), clone: () => {
        const c = cloneOuter(x.from.mountId, x.rel);
        clones.push(c);
        return c.path;
      } }]));
      const { nestedMnt: _, root: __, extMounts: ___, ...rest } = ctx;
      restoreMounts({ ...rest, rootCode: h.code, outerBinds: binds }, h.hostPid, id);
    } finally {
      for (const c of clones) c.close();
    }
    ctx.log.info(`mnt namespace ${id}: made by helper ${h.hostPid} (${b.binds.size} binds of the root's mounts)`);
  }
}

/** The ids of the nested mount namespaces of a restored tree, in its order: those of tasks whose mnt_ns_id is not the root's. */
export function nestedMntIds(rootMntNs: number | undefined, taskMntNs: readonly (number | undefined)[]): number[] {
  const out: number[] = [];
  for (const n of taskMntNs) if (n !== undefined && n !== rootMntNs && !out.includes(n)) out.push(n);
  return out;
}
