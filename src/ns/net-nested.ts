// Network namespaces of a tree other than its root's own (a task that unshared CLONE_NEWNET:
// zdtm's netns_sub, netns_sub_veth). Each is dumped as the root's is (net.ts: netdev-, netns-,
// ifaddr-, route-, rule-<id>.img and its rules), read through the first task in it, and each
// task's ids-<pid>.img names its own (CRIU's net_ns_id). A veth whose ends sit in two of the
// tree's namespaces is written in both, each end with its peer's ifindex and namespace
// (CRIU's peer_ifindex, peer_nsid). `ip` names a peer's namespace only by a number local to
// the device's (link_netnsid), so the two ends are matched by their ifindexes, each the other's
// peer; a match that is not unique is refused.
// At restore every namespace exists before any is filled (the root clones a holder in each
// new one, restore/nested-nets.ts), so such a pair is made once, by the first of its two
// namespaces to be filled, with its peer born in the other; the other only sets it up.
import { spawnSync } from 'node:child_process';
import { inNamespace, CLONE_NEWNET } from '../sys/index.js';
import { readImage } from '../image/index.js';
import { NdType, type NetDeviceEntry } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import type { NsDumpCtx } from './ns-kind.js';
import { attrs, flagsOf, IFF_UP, type JsonLink } from './net-dev.js';

import { netNs, type Captured } from './net.js';
import { toolEnv } from './tool-env.js';

/** A veth of a namespace whose peer is in another: its ifindex, its peer's there, and whether it is up. */
interface VethEnd {
  ifindex: number;
  name: string;
  peerIfindex: number;
  up: boolean;
}

/** A network namespace of the tree other than its root's: its link, the first task in it, and what was read of it. */
export interface NestedNetNs {
  link: string;
  pid: number;
  state?: Captured;
}

/** The veths joining two of the tree's namespaces, by the link of each: by ifindex, the peer's ifindex and namespace; and those whose peer is up. */
export interface VethPairs {
  cross: Map<string, Map<number, { peerIfindex: number; peerLink: string }>>;
  peersUp: Map<string, Set<number>>;
}

/**
 * Finds the peer of each veth of the namespaces `all` (the root's first) whose peer is in
 * another namespace, among them; throws where two could be. Read before their trials, which
 * bring up a stand-in peer where the real one is up (the veth's carrier follows it).
 */
export function vethPairs(all: readonly { pid: number; link: string }[]): VethPairs {
  const ends = all.map((n) => inNamespace(`/proc/${n.pid}/ns/net`, 'net', CLONE_NEWNET, () => {
    const r = spawnSync('ip', ['-j', '-d', 'link', 'show'], { env: toolEnv(), encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace of pid ${n.pid}: ip link show failed (${(r.error?.message ?? r.stderr).trim()})`);
    const links = JSON.parse(r.stdout || '[]') as JsonLink[];
    return links.flatMap((l): VethEnd[] => (l.linkinfo?.info_kind === 'veth' && l.link_netnsid !== undefined && l.link_index !== undefined ? [{ ifindex: l.ifindex, name: l.ifname, peerIfindex: l.link_index, up: (flagsOf(l) & IFF_UP) !== 0 }] : []));
  }));
  const out: VethPairs = { cross: new Map(all.map((n) => [n.link, new Map()])), peersUp: new Map(all.map((n) => [n.link, new Set()])) };
  all.forEach((x, i) => {
    for (const v of ends[i]!) {
      const peers = all.flatMap((y, j) => (j === i ? [] : ends[j]!.filter((w) => w.ifindex === v.peerIfindex && w.peerIfindex === v.ifindex).map((w) => ({ y, w }))));
      if (peers.length > 1) throw new StasisError('E_UNSUPPORTED', `Cannot dump veth ${v.name} of pid ${x.pid}'s network namespace: its peer (ifindex ${v.peerIfindex}) could be ${peers.map((p) => `${p.w.name} of pid ${p.y.pid}'s namespace`).join(' or ')}, and stasis cannot tell which`);
      const p = peers[0];
      if (!p) continue;
      out.cross.get(x.link)!.set(v.ifindex, { peerIfindex: p.w.ifindex, peerLink: p.y.link });
      if (p.w.up) out.peersUp.get(x.link)!.add(v.ifindex);
    }
  });
  return out;
}

/** Checks and reads each nested namespace (as the root's was, with the tree frozen), its veths' peers found by `pairs`; throws what cannot be dumped. */
export function captureNestedNet(nested: NestedNetNs[], tree: number[], pairs: VethPairs, rootLink: string, rootState: unknown): void {
  for (const n of nested) {
    const why = netNs.check(n.pid) ?? (() => {
      const cap = netNs.capture(n.pid, tree, pairs.peersUp.get(n.link));
      if (cap.state) n.state = cap.state as Captured;
      return cap.why;
    })();
    if (why) throw new StasisError('E_UNSUPPORTED', `Cannot dump net namespace ${n.link} of pid ${n.pid}: ${why}`);
  }
  if (rootState) (rootState as Captured).cross = pairs.cross.get(rootLink) ?? new Map();
  for (const n of nested) n.state!.cross = pairs.cross.get(n.link) ?? new Map();
}

/** Writes the images of each nested namespace, by the id its link has in ids-<pid>.img. */
export function dumpNestedNet(ctx: NsDumpCtx, nested: readonly NestedNetNs[], id: (link: string) => number): void {
  for (const n of nested) netNs.dump(ctx, n.pid, id(n.link), n.state);
}

/** The tree's network namespaces as a restore makes them: a task (stasis's pid) in each by its id, and those filled already. */
export interface NetsMade {
  pidOf: (id: number) => number | undefined;
  filled: Set<number>;
}

/** The veths of namespace `id` whose peer is in another namespace of the tree being made. */
export function crossVeths(devs: readonly NetDeviceEntry[], id: number, nets: NetsMade | undefined): NetDeviceEntry[] {
  return devs.filter((d) => d.type === NdType.VETH && d.peerNsid !== undefined && d.peerNsid !== id && d.peerIfindex !== 0 && nets?.pidOf(d.peerNsid) !== undefined);
}

/**
 * The commands, run in the namespace, that make each veth of `cross` with its peer born in the
 * peer's namespace, where that one is not filled yet (else the pair is there already).
 */
export function crossScript(imagesDir: string, cross: readonly NetDeviceEntry[], nets: NetsMade | undefined): string {
  const out: string[] = [];
  for (const d of cross) {
    const other = d.peerNsid!;
    if (nets!.filled.has(other)) continue;
    const p = readImage(imagesDir, 'netdev', other).find((x) => x.ifindex === d.peerIfindex && x.type === NdType.VETH);
    if (!p) throw new StasisError('E_CORRUPT', `Cannot restore veth ${d.name}: its peer ${d.peerIfindex} is not in netdev-${other}.img`);
    out.push(`ip link add ${attrs(d)} type veth peer ${attrs(p)} netns ${nets!.pidOf(other)} || exit 3`);
  }
  return out.join('\n');
}
