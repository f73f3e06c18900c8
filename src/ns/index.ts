// The namespaces of a tree. At dump, every task must be in the root's namespaces (stasis
// restores one set; mount namespaces below the root's own are dumped each, mnt-nested.ts, and
// network namespaces other than the root's own too, net-nested.ts), and each namespace of the root's that is not stasis's own must be of a
// kind that can be dumped (NS_KINDS with a `dump`); the rest are refused by name before
// anything is written. At restore, the kinds to create are those whose ids in the root's
// ids-<pid>.img differ from inventory's root_ids (CRIU's root_ns_mask).
import fs from 'node:fs';
import { CLONE_NEWTIME, CLONE_NEWNET } from '../sys/index.js';
import type { TaskKobjIdsEntry } from '../image/gen/stasis/core_pb.js';
import { StasisError } from '../errors.js';
import type { NsCheckOpts, NsDumpCtx, NsKind, NsName, NsRestoreCtx } from './ns-kind.js';
import { utsNs } from './uts.js';
import { ipcNs } from './ipc.js';
import { netNs } from './net.js';
import { cgroupNs } from './cgroup.js';
import { mntNs } from './mnt.js';
import { checkNestedMnt, dumpNestedMnt, type NestedMntNs } from './mnt-nested.js';
import { captureNestedNet, dumpNestedNet, vethPairs, type NestedNetNs } from './net-nested.js';
import { timeNs, timeOffsets } from './time.js';
import { pidNs, innerPids, SAME_PIDS, type PidView } from './pid.js';
import { userNs, innerIds, hostIds, readUserns, readUsernsImage, SAME_IDS, type IdView } from './user.js';

export { SAME_PIDS, type PidView } from './pid.js';
export { SAME_IDS, type IdView } from './user.js';

export type { NsCheckOpts, NsDumpCtx, NsKind, NsName, NsRestoreCtx } from './ns-kind.js';

// CRIU's order of ns ids (kobj-ids.ts numbers them in it); it is also the order the kernel
// needs at restore: all are made by the root's clone3 at once.
export const NS_KINDS: readonly NsKind[] = [
  pidNs,
  netNs,
  ipcNs,
  utsNs,
  timeNs,
  mntNs,
  userNs,
  cgroupNs,
];

const ID_FIELD: Record<NsName, keyof TaskKobjIdsEntry> = {
  pid: 'pidNsId', net: 'netNsId', ipc: 'ipcNsId', uts: 'utsNsId', time: 'timeNsId', mnt: 'mntNsId', user: 'userNsId', cgroup: 'cgroupNsId',
};

function link(pid: number | 'self', kind: string): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined; // a kernel without this kind
  }
}

/** The root's namespaces that are its own (not stasis's), and the links of each. */
export interface TreeNamespaces {
  own: NsKind[];
  links: Map<NsName, string>;
  /** CLONE_NEW* flags whose namespace is neither dumped nor checked (CRIU's --empty-ns): restored new and empty. */
  empty: number;
  /** The pids the images hold: those of the tree's pid namespace. */
  pids: PidView;
  /** The uids and gids the images hold: those of the tree's user namespace (from stasis's). */
  users: IdView;
  /** What each kind's `capture` read before the dump changed anything. */
  captured: Map<NsName, unknown>;
  /** The tree's mount namespaces below its root's (each with the first task in it), dumped with the root's. */
  mntNested: NestedMntNs[];
  /** The tree's network namespaces other than its root's own (each with the first task in it and what was read of it), dumped with the root's. */
  netNested: NestedNetNs[];
}

/** Refuses a tree whose namespaces stasis cannot give back; `pids` is the tree, the root first. */
export function checkTreeNamespaces(pids: number[], emptyNs = 0, mounts: NsCheckOpts = { hasRoot: false, extMounts: new Map() }): TreeNamespaces {
  const root = pids[0]!;
  const own: NsKind[] = [];
  const links = new Map<NsName, string>();
  const captured = new Map<NsName, unknown>();
  const mntNested: NestedMntNs[] = [];
  const netNested: NestedNetNs[] = [];
  for (const k of NS_KINDS) {
    const theirs = link(root, k.name);
    if (theirs === undefined) continue;
    links.set(k.name, theirs);
    for (const p of pids.slice(1)) {
      const l = link(p, k.name);
      // Mount namespaces of the tree's own below the root's are dumped each (mnt-nested.ts).
      if (k === mntNs && l !== undefined && l !== theirs && theirs !== link('self', 'mnt') && l !== link('self', 'mnt') && !(emptyNs & k.flag)) {
        if (!mntNested.some((n) => n.link === l)) mntNested.push({ link: l, pid: p });
        continue;
      }
      // So are network namespaces other than the root's own (net-nested.ts), stasis's excepted.
      if (k === netNs && l !== undefined && l !== theirs && theirs !== link('self', 'net') && l !== link('self', 'net') && !(emptyNs & k.flag)) {
        if (!netNested.some((n) => n.link === l)) netNested.push({ link: l, pid: p });
        continue;
      }
      if (l !== undefined && l !== theirs) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${p}: it is in ${k.name} namespace ${l}, its tree's root ${root} in ${theirs}; stasis restores a tree whose tasks all share the root's namespaces`);
      }
    }
    // A task that unshared without forking yet has its children's namespace apart from its own.
    if (k.name === 'pid' || k.name === 'time') {
      for (const p of pids) {
        const next = link(p, `${k.name}_for_children`);
        if (next !== undefined && next !== theirs) {
          throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${p}: its children would be born in ${k.name} namespace ${next}, not its own ${link(p, k.name)}; stasis cannot dump a pending ${k.name} namespace`);
        }
      }
    }
    if (theirs === link('self', k.name)) {
      const why = k.hostCheck?.(pids);
      if (why) throw new StasisError('E_UNSUPPORTED', `Cannot dump the tree of pid ${root}: ${why}; stasis dumps SysV IPC only with an IPC namespace of the tree's own (unshare --ipc)`);
      continue;
    }
    if (emptyNs & k.flag) {
      own.push(k);
      continue;
    }
    if (!k.dump) {
      // A kind that cannot be dumped yet may still say which part of it stops it.
      const part = k.check?.(root, pids, mounts);
      if (part) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${k.name} namespace ${theirs} of pid ${root}: ${part}`);
      throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${root}: it is in ${k.name} namespace ${theirs}, not stasis's (${link('self', k.name)}); stasis cannot dump ${k.name} namespaces yet`);
    }
    const opts = k === mntNs ? withSpaces(mounts, theirs, root, mntNested) : mounts;
    const why = k.check?.(root, pids, opts) ?? (k === mntNs && mntNested.length ? checkNestedMnt(root, mntNested, opts) : undefined);
    if (why) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${k.name} namespace ${theirs} of pid ${root}: ${why}`);
    // The veths between the tree's network namespaces, found before their trials (net-nested.ts).
    const pairs = k === netNs && netNested.length ? vethPairs([{ pid: root, link: theirs }, ...netNested]) : undefined;
    const cap = k.capture?.(root, pids, pairs?.peersUp.get(theirs));
    if (cap?.why) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${k.name} namespace ${theirs} of pid ${root}: ${cap.why}`);
    if (cap) captured.set(k.name, cap.state);
    if (pairs) captureNestedNet(netNested, pids, pairs, theirs, cap?.state);
    own.push(k);
  }
  return {
    own, links, empty: emptyNs & CLONE_NEWNET, pids: own.includes(pidNs) ? innerPids() : SAME_PIDS,
    users: own.includes(userNs) ? innerIds(readUserns(root)) : SAME_IDS, captured, mntNested, netNested,
  };
}

/** The mount options with the tree's mount namespaces: the root's (`link`, of task `root`) and those below it. */
const withSpaces = (mounts: NsCheckOpts, link: string, root: number, nested: readonly NestedMntNs[]): NsCheckOpts =>
  nested.length ? { ...mounts, mntSpaces: [{ link, pid: root }, ...nested] } : mounts;

/** Writes the images of every namespace of the tree's own; `nsIdOf` numbers them as ids-<pid>.img does. */
export function dumpNamespaces(ctx: NsDumpCtx, ns: TreeNamespaces, rootPid: number, nsIdOf: (link: string) => number): void {
  for (const k of ns.own) {
    const id = nsIdOf(ns.links.get(k.name)!);
    if (ns.empty & k.flag) {
      ctx.log.info(`${k.name} namespace ${id}: not dumped (empty namespace asked for)`);
      continue;
    }
    const kctx = k === mntNs ? { ...ctx, mounts: withSpaces(ctx.mounts, ns.links.get(k.name)!, rootPid, ns.mntNested) } : ctx;
    k.dump!({ ...kctx, users: ns.users, nsIdOf }, rootPid, id, ns.captured.get(k.name));
    if (k === mntNs && ns.mntNested.length) dumpNestedMnt(kctx, rootPid, ns.mntNested, nsIdOf);
    if (k === netNs && ns.netNested.length) dumpNestedNet({ ...ctx, users: ns.users, nsIdOf }, ns.netNested, nsIdOf);
  }
}

/** The kinds the root task was dumped in namespaces of its own, from its ids and inventory's root_ids. */
export function ownNamespaces(rootIds: TaskKobjIdsEntry | undefined, ids: TaskKobjIdsEntry): NsKind[] {
  if (!rootIds) return [];
  return NS_KINDS.filter((k) => {
    const a = rootIds[ID_FIELD[k.name]], b = ids[ID_FIELD[k.name]];
    return typeof a === 'number' && typeof b === 'number' && a !== 0 && b !== 0 && a !== b;
  });
}

/** Refuses what cannot be restored before anything is created; the CLONE_NEW* flags of the root's clone3. */
export function restoreFlags(kinds: NsKind[]): number {
  for (const k of kinds) {
    if (!k.restore) throw new StasisError('E_UNSUPPORTED', `Cannot restore the tree: its root was in a ${k.name} namespace of its own, and stasis cannot restore ${k.name} namespaces yet`);
  }
  // A time namespace is unshared by the stub before the root is cloned (rootTimeOffsets).
  return kinds.reduce((f, k) => f | k.flag, 0) & ~CLONE_NEWTIME;
}

/** For a root dumped in a time namespace of its own: the offsets its new one gets. */
export function rootTimeOffsets(ctx: NsRestoreCtx, kinds: NsKind[], ids: TaskKobjIdsEntry): string | undefined {
  return kinds.includes(timeNs) ? timeOffsets(ctx, ids.timeNsId!) : undefined;
}

/** Fills the namespaces the root (host pid `hostPid`) was just created in: its user namespace's maps first, before anything acts in it. */
export function restoreNamespaces(ctx: NsRestoreCtx, kinds: NsKind[], ids: TaskKobjIdsEntry, hostPid: number): void {
  for (const k of [...kinds].sort((a, b) => Number(b === userNs) - Number(a === userNs))) {
    const id = ids[ID_FIELD[k.name]] as number;
    ctx.log.info(`restoring ${k.name} namespace ${id}`);
    k.restore!(ctx, hostPid, id);
  }
}

/** Fills the tree's network namespaces other than its root's, each made by its holder (host pid), once the root's is filled. */
export function restoreNestedNets(ctx: NsRestoreCtx, holders: { id: number; hostPid: number }[]): void {
  for (const h of holders) {
    ctx.log.info(`restoring net namespace ${h.id} (of holder ${h.hostPid})`);
    netNs.restore(ctx, h.hostPid, h.id);
  }
}

/** The pids images hold for the tree of `root`: those of its pid namespace (pre-dump names its images as dump does). */
export function treePids(root: number): PidView {
  return link(root, 'pid') !== link('self', 'pid') ? innerPids() : SAME_PIDS;
}

/** For a root dumped in a user namespace of its own: its ids to stasis's (the images hold the namespace's). */
export function restoreUsers(imagesDir: string, kinds: NsKind[], ids: TaskKobjIdsEntry): IdView {
  return kinds.includes(userNs) ? hostIds(readUsernsImage(imagesDir, ids.userNsId!)) : SAME_IDS;
}

