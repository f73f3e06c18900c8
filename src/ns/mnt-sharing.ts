// Mount propagation of a tree's own mount namespace (CRIU's mount-v2 sharing groups): which
// mounts are peers (shared:N), slaves of a peer group (master:N) or unbindable, planned at
// dump from mountinfo and at restore from the image, set once every mount is made (they are
// all private while the tree is built, so nothing propagates into the tree as it grows).
// A group is the mounts with one (shared, master) pair. The kernel copies a group with
// move_mount(MOVE_MOUNT_SET_GROUP) only from a mount of the same superblock whose root holds
// the other's (fs/namespace.c do_set_group), so each group's first is its widest mount; a
// slave group joins the first of its master's group, then is made a slave of it. What cannot
// be made so, or what ties the tree to mounts not its own, is refused by name. A group with
// mounts in several of the tree's mount namespaces (a child that unshared CLONE_NEWNS keeps
// peers of its parent's shared mounts) is made in the namespace of its widest mount; its
// mounts in the others are joined to it once every namespace is made, its slaves there joined
// and then made slaves by a task of their namespace (planPeers()).
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

/** `joined`: the peer groups whose mounts here are joined to a mount of another of the tree's namespaces (planPeers()), left out. */
export function planSharing(mounts: readonly MountInfo[], name: (m: MountInfo) => string, joined: ReadonlySet<number> = new Set()): Sharing {
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
    if ((m.shared === undefined && m.master === undefined) || joined.has(m.shared ?? 0)) continue;
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

/** The mounts of one of the tree's mount namespaces, `ns` naming it (its link at dump, its image id at restore). */
export interface NsMounts {
  ns: string;
  mounts: readonly MountInfo[];
}

/**
 * A peer group with mounts in several of the tree's mount namespaces (a namespace unshared
 * from another begins with peers of its shared mounts), or with slaves in other namespaces
 * (`unshare --propagation slave`): made in the namespace `ns` of its widest mount `first`, as
 * any group there; its mounts of the other namespaces are left private in theirs and joined
 * to `first` once every namespace is made (MOVE_MOUNT_SET_GROUP works across namespaces, and
 * gives the group's master too), its slaves there joined so too, then made slaves in their
 * namespace; a slave that is shared is the first of its peer group there (`peers` the others,
 * `shared` its id), made shared again and then given to them.
 */
export interface CrossGroup {
  shared: number;
  ns: string;
  first: number;
  joins: { ns: string; mntId: number }[];
  slaves: { ns: string; mntId: number; shared?: number; peers?: number[] }[];
}

/** The peer groups of the tree's namespaces that span several, or why they cannot be made again. */
export function planPeers(spaces: readonly NsMounts[], name: (m: MountInfo) => string): CrossGroup[] | { refused: string } {
  const members = new Map<number, { ns: string; m: MountInfo }[]>();
  for (const s of spaces) for (const m of s.mounts) if (m.shared !== undefined) members.set(m.shared, [...(members.get(m.shared) ?? []), { ns: s.ns, m }]);
  // (The root's namespace comes first: of equal roots, its mount is the group's first.)
  const widest = <T extends { m: MountInfo }>(list: readonly T[]) => list.reduce((a, b) => (b.m.root.length < a.m.root.length ? b : a));
  const holds = (what: string, first: { ns: string; m: MountInfo }, o: { ns: string; m: MountInfo }): string | undefined => {
    const at = `${name(o.m)} of mount namespace ${o.ns}`, top = `${name(first.m)} of mount namespace ${first.ns}`;
    if (!sameDev(o.m, first.m)) return `${what} has mounts of two filesystems (${top}, ${at})`;
    if (!isUnder(o.m.root, first.m.root)) return `${what} has no mount whose root holds the others' (${top}, ${at}), which stasis cannot make again`;
    return undefined;
  };
  const out: CrossGroup[] = [];
  for (const [shared, list] of members) {
    if (new Set(list.map((o) => o.ns)).size < 2) continue;
    const first = widest(list);
    for (const o of list) {
      const why = holds(`peer group ${shared}`, first, o);
      if (why) return { refused: why };
    }
    out.push({ shared, ns: first.ns, first: first.m.mountId, joins: list.filter((o) => o.ns !== first.ns).map((o) => ({ ns: o.ns, mntId: o.m.mountId })), slaves: [] });
  }
  /** The namespace that makes group `g`: its first's, or none for a group of the host's. */
  const makerOf = (g: number) => out.find((c) => c.shared === g)?.ns ?? members.get(g)?.[0]!.ns;
  // A group across namespaces that is a slave is made one where it is made: its other mounts get the master with the group.
  for (const c of out) {
    const list = members.get(c.shared)!, master = list.find((o) => o.m.mountId === c.first)!.m.master;
    const off = list.find((o) => o.m.master !== master);
    if (off) return { refused: `the mounts of peer group ${c.shared} are slaves of different peer groups (${name(off.m)} of mount namespace ${off.ns}), which stasis cannot make again` };
    const mk = master === undefined ? undefined : makerOf(master);
    if (mk !== undefined && mk !== c.ns) return { refused: `peer group ${c.shared}, made in mount namespace ${c.ns}, is a slave of peer group ${master}, which mount namespace ${mk} makes; stasis restores a slave group across mount namespaces only in the namespace of its master's` };
  }
  // A slave is made in its namespace from its master's group there (restoreSharing); one of
  // another namespace's group, once every namespace is made.
  const placed = new Set<number>();
  for (const s of spaces) {
    for (const m of s.mounts) {
      const mk = m.master === undefined ? undefined : makerOf(m.master);
      if (mk === undefined || mk === s.ns) continue; // (a slave of the host's group: mnt.ts)
      // (A peer of a group across namespaces gets its master with the group.)
      if (m.shared !== undefined && (out.some((c) => c.shared === m.shared) || placed.has(m.shared))) continue;
      let g = out.find((c) => c.shared === m.master);
      if (!g) out.push((g = { shared: m.master!, ns: mk, first: widest(members.get(m.master!)!).m.mountId, joins: [], slaves: [] }));
      const top = members.get(m.master!)!.find((o) => o.m.mountId === g.first)!;
      const peers = m.shared === undefined ? [{ ns: s.ns, m }] : members.get(m.shared)!;
      const first = widest(peers);
      const why = holds(`peer group ${m.master}, with slaves in mount namespace ${s.ns},`, top, first) ?? peers.map((o) => holds(`peer group ${m.shared}`, first, o)).find(Boolean);
      if (why) return { refused: why };
      if (m.shared === undefined) g.slaves.push({ ns: s.ns, mntId: m.mountId });
      else {
        placed.add(m.shared);
        g.slaves.push({ ns: s.ns, mntId: first.m.mountId, shared: m.shared, peers: peers.filter((o) => o !== first).map((o) => o.m.mountId) });
      }
    }
  }
  // (Such a group is made last: slaves of it would be made before it.)
  for (const s of spaces) {
    const m = s.mounts.find((o) => o.master !== undefined && placed.has(o.master));
    if (m) return { refused: `${name(m)} of mount namespace ${s.ns} is a slave of peer group ${m.master}, itself a slave of another mount namespace's peer group; stasis cannot make that chain again yet` };
  }
  return out;
}

/** The groups of planPeers() whose mounts in namespace `ns` are joined to another namespace's or made from its group: left out of the namespace's own. */
export function joinedHere(cross: readonly CrossGroup[], ns: string): Set<number> {
  return new Set([
    ...cross.filter((g) => g.ns !== ns && g.joins.some((j) => j.ns === ns)).map((g) => g.shared),
    ...cross.flatMap((g) => g.slaves.filter((s) => s.ns === ns && s.shared !== undefined).map((s) => s.shared!)),
  ]);
}

/** The mounts of namespace `ns` that planPeers() makes slaves of another namespace's group. */
export function slavedHere(cross: readonly CrossGroup[], ns: string): Set<number> {
  return new Set(cross.flatMap((g) => g.slaves.filter((s) => s.ns === ns).flatMap((s) => [s.mntId, ...(s.peers ?? [])])));
}

/**
 * The first peer group of a namespace's mounts that a mount of a namespace other than the
 * tree's (`treeNs`, their links) is in too: restored, the tie would be gone. Reads one task's
 * mountinfo for each other mount namespace tasks are in.
 */
export function sharedOutside(mounts: readonly MountInfo[], treeNs: ReadonlySet<string>, name: (m: MountInfo) => string): string | undefined {
  const ours = new Map<number, MountInfo>();
  for (const m of mounts) if (m.shared !== undefined && !ours.has(m.shared)) ours.set(m.shared, m);
  if (ours.size === 0) return undefined;
  const seen = new Set(treeNs);
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
    if (hit) return `${name(ours.get(hit.shared!)!)} is in peer group ${hit.shared}, which mount ${hit.mountId} at ${hit.mountPoint} of mount namespace ${ns} (pid ${p}) is in too; stasis restores the peer groups of the tree's own mount namespaces only`;
  }
  return undefined;
}

type Call = (what: string, name: 'move_mount' | 'mount_setattr', ...args: (number | string | Buffer)[]) => number;

const AT_EMPTY_PATH = 0x1000, MOVE_MOUNT_F_EMPTY_PATH = 0x4, MOVE_MOUNT_T_EMPTY_PATH = 0x40, MOVE_MOUNT_SET_GROUP = 0x100;

/** struct mount_attr (include/uapi/linux/mount.h, MOUNT_ATTR_SIZE_VER0): only its propagation. */
export function mountAttr(propagation: number): Buffer {
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
