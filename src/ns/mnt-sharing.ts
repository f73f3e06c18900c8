// Mount propagation of a tree's own mount namespace (CRIU's mount-v2 sharing groups): which
// mounts are peers (shared:N), slaves of a peer group (master:N) or unbindable, planned at
// dump from mountinfo and at restore from the image, set once every mount is made (they are
// all private while the tree is built, so nothing propagates into the tree as it grows).
// A group is the mounts with one (shared, master) pair. The kernel copies a group with
// move_mount(MOVE_MOUNT_SET_GROUP) only from a mount of the same superblock whose root holds
// the other's (fs/namespace.c do_set_group), so each group's first is its widest mount; a
// slave group joins the first of its master's group, then is made a slave of it. What cannot
// be made so, or what ties the tree to mounts not its own, is refused by name.
import fs from 'node:fs';
import type { MountInfo } from '../proc/mountinfo.js';
import { parseMountinfo } from '../proc/mountinfo.js';

// A notice: these are MS_* values; an image keeps MS_SHARED, MS_SLAVE and MS_UNBINDABLE in MntEntry.flags, as CRIU does.
export const MS_UNBINDABLE = 0x20000, MS_PRIVATE = 0x40000, MS_SLAVE = 0x80000, MS_SHARED = 0x100000;
export const MS_PROPAGATION = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED;

/**
 * The mounts of one (shared, master) pair; `first` holds the others' roots (in a group of
 * slaves that are no peers, each is made from its master alone), `parent` is the index of
 * the group it is a slave of; a group with a master and no parent is a slave of the host's
 * peer group, which its mounts are made with (external mounts and binds of them).
 */
export interface SharingGroup {
  shared: number;
  master: number;
  first: number;
  others: number[];
  parent?: number;
}

/** The groups, each after the group it is a slave of, and the unbindable mounts; or why they cannot be made again. */
export type Sharing = { groups: SharingGroup[]; unbindable: number[] } | { refused: string };

const isUnder = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(`${dir}/`);
const sameDev = (a: MountInfo, b: MountInfo) => a.dev.major === b.dev.major && a.dev.minor === b.dev.minor;

export function planSharing(mounts: readonly MountInfo[], name: (m: MountInfo) => string): Sharing {
  const byPair = new Map<string, MountInfo[]>();
  const mastersOf = new Map<number, Set<number>>();
  const unbindable: number[] = [];
  for (const m of mounts) {
    // A master no mount of the tree's namespace shows (fs/proc_namespace.c prints propagate_from then).
    if (m.propagateFrom !== undefined) return { refused: `${name(m)} is a slave of peer group ${m.master ?? '?'}, which is outside the tree (it receives through peer group ${m.propagateFrom}); stasis restores the tree's own peer groups only` };
    if (m.unbindable) {
      if (m.shared !== undefined || m.master !== undefined) return { refused: `${name(m)} is unbindable and in peer group ${m.shared ?? m.master}, which the kernel does not make` };
      unbindable.push(m.mountId);
    }
    if (m.shared === undefined && m.master === undefined) continue;
    const key = `${m.shared ?? 0}:${m.master ?? 0}`;
    byPair.set(key, [...(byPair.get(key) ?? []), m]);
    if (m.shared !== undefined) mastersOf.set(m.shared, (mastersOf.get(m.shared) ?? new Set()).add(m.master ?? 0));
  }
  const groups: SharingGroup[] = [];
  const firstOf = new Map<number, MountInfo>(); // by shared id
  for (const [, list] of byPair) {
    const first = list.reduce((a, b) => (b.root.length < a.root.length ? b : a));
    const shared = first.shared ?? 0, master = first.master ?? 0;
    const what = shared ? `peer group ${shared}` : `the slaves of peer group ${master}`;
    if (shared && mastersOf.get(shared)!.size > 1) return { refused: `the mounts of peer group ${shared} are slaves of different peer groups (${[...mastersOf.get(shared)!].join(', ')}), which stasis cannot make again` };
    for (const o of list) {
      if (!sameDev(o, first)) return { refused: `${what} has mounts of two filesystems (${name(first)}, ${name(o)})` };
      // Only a mount whose root holds another's gives it its group (slaves that are no peers are each made from their master).
      if (shared && !isUnder(o.root, first.root)) return { refused: `${what} has no mount whose root holds the others' (${name(first)}, ${name(o)}), which stasis cannot make again` };
    }
    groups.push({ shared, master, first: first.mountId, others: list.filter((o) => o !== first).map((o) => o.mountId) });
    if (shared) firstOf.set(shared, first);
  }
  // Masters before their slaves (a peer group cannot be its own master's master).
  const ordered: SharingGroup[] = [];
  const placed = new Set<SharingGroup>();
  const byId = new Map(mounts.map((m) => [m.mountId, m]));
  const place = (g: SharingGroup, depth: number): string | undefined => {
    if (placed.has(g)) return undefined;
    if (depth > groups.length) return `peer group ${g.shared || g.master} is its own master`;
    // (A master no mount of the tree is in is the host's: its slaves are made so as external mounts are, mnt.ts.)
    const p = g.master ? groups.find((o) => o.shared === g.master) : undefined;
    if (p) {
      const why = place(p, depth + 1);
      if (why) return why;
      const from = firstOf.get(g.master)!;
      for (const id of g.shared ? [g.first] : [g.first, ...g.others]) {
        const m = byId.get(id)!;
        if (!sameDev(from, m) || !isUnder(m.root, from.root)) return `${name(m)} is a slave of peer group ${g.master}, none of whose mounts holds its root (${name(from)}), which stasis cannot make again`;
      }
      g.parent = ordered.indexOf(p);
    }
    placed.add(g);
    ordered.push(g);
    return undefined;
  };
  for (const g of groups) {
    const why = place(g, 0);
    if (why) return { refused: why };
  }
  return { groups: ordered, unbindable };
}

/**
 * The first peer group of a namespace's mounts that a mount of another namespace is in too
 * (peer groups are global; a nested namespace of the tree's begins with peers of its parent's
 * shared mounts): restored, each namespace's group would be its own, the tie gone. Reads one task's mountinfo for each other mount namespace tasks are in.
 */
export function sharedOutside(mounts: readonly MountInfo[], treeNs: string, name: (m: MountInfo) => string): string | undefined {
  const ours = new Map<number, MountInfo>();
  for (const m of mounts) if (m.shared !== undefined && !ours.has(m.shared)) ours.set(m.shared, m);
  if (ours.size === 0) return undefined;
  const seen = new Set([treeNs]);
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let ns: string, theirs: MountInfo[];
    try {
      ns = fs.readlinkSync(`/proc/${p}/ns/mnt`);
      if (seen.has(ns)) continue;
      theirs = parseMountinfo(fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8'));
    } catch {
      continue; // gone, or a kernel thread
    }
    seen.add(ns);
    const hit = theirs.find((o) => o.shared !== undefined && ours.has(o.shared));
    if (hit) return `${name(ours.get(hit.shared!)!)} is in peer group ${hit.shared}, which mount ${hit.mountId} at ${hit.mountPoint} of mount namespace ${ns} (pid ${p}) is in too; stasis restores peer groups within one mount namespace only`;
  }
  return undefined;
}

type Call = (what: string, name: 'move_mount' | 'mount_setattr', ...args: (number | string | Buffer)[]) => number;

const AT_EMPTY_PATH = 0x1000, MOVE_MOUNT_F_EMPTY_PATH = 0x4, MOVE_MOUNT_T_EMPTY_PATH = 0x40, MOVE_MOUNT_SET_GROUP = 0x100;

/** struct mount_attr (include/uapi/linux/mount.h, MOUNT_ATTR_SIZE_VER0): only its propagation. */
function mountAttr(propagation: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(BigInt(propagation), 16);
  return b;
}

/**
 * Sets the propagation of a tree whose mounts are all private, through the task's fds on
 * them (`fd`, by image mount id), with the task's own calls: each group after its master's.
 */
export function restoreSharing(s: Exclude<Sharing, { refused: string }>, fd: ReadonlyMap<number, number>, call: Call, where: (mntId: number) => string): void {
  const setGroup = (from: number, to: number) => call(`copying the peer group of ${where(from)} to ${where(to)}`, 'move_mount', fd.get(from)!, '', fd.get(to)!, '', MOVE_MOUNT_SET_GROUP | MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  const make = (mntId: number, propagation: number, what: string) => call(`making ${where(mntId)} ${what}`, 'mount_setattr', fd.get(mntId)!, '', AT_EMPTY_PATH, mountAttr(propagation), 32);
  for (const g of s.groups) {
    // A slave joins its master's peer group, then leaves it as its slave (do_make_slave); a
    // slave of the host's group is one already.
    const slave = (mntId: number) => {
      if (g.parent === undefined) return;
      setGroup(s.groups[g.parent]!.first, mntId);
      make(mntId, MS_SLAVE, 'a slave');
    };
    if (g.shared) {
      if (g.master) slave(g.first);
      make(g.first, MS_SHARED, 'shared');
      // Its peers get its group and its master both.
      for (const o of g.others) setGroup(g.first, o);
    } else for (const o of [g.first, ...g.others]) slave(o);
  }
  for (const mntId of s.unbindable) make(mntId, MS_UNBINDABLE, 'unbindable');
}
