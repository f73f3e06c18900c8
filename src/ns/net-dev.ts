// The devices of a network namespace, CRIU's way (criu/net.c dump_one_netdev, restore_links):
// each one a NetDeviceEntry of netdev-<id>.img with its ifindex, name, MAC address, MTU,
// flags, master and devconf sysctls. lo is there already; a bridge and a veth pair whose two
// ends are inside are made again in the namespace; a veth whose peer is outside gets a new
// peer outside, named by `--external veth[IN]:OUT[@BRIDGE]` (put in that bridge), and a
// macvlan is made again on the host's device `--external macvlan[IN]:OUTDEV` names (both made
// from stasis's namespace with their inside end born in the new one, at their ifindex); a veth
// made beforehand, `--external netdev[IN]:OUT`, is moved in from there instead; a tun or tap
// device is made by stasis's ioctls (net-tun.ts, which reads its TunLinkEntry). Made
// down, given their sysctls and masters, then brought up. Other kinds are refused; what the devices do not come back with (a bridge option, a port's state) is caught
// by the dump's trial (net.ts), which makes them in scratch namespaces and lists them again.
import { create } from '@bufbuild/protobuf';
import { MacvlanLinkEntrySchema, NdType, NetDeviceEntrySchema, type NetDeviceEntry } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import { readConf } from './net-sysctl.js';

/** What `ip -d -j link show` says of a device. */
export interface JsonLink {
  ifindex: number; ifname: string; flags: string[]; mtu: number; address?: string; link?: string; link_index?: number; link_netnsid?: number; master?: string;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string; flags?: string[] | number; numqueues?: number; numdisabled?: number }; info_slave_kind?: string };
}

const FLAG_BITS: Record<string, number> = {
  UP: 0x1, BROADCAST: 0x2, DEBUG: 0x4, LOOPBACK: 0x8, POINTOPOINT: 0x10, NOTRAILERS: 0x20, NOARP: 0x80, PROMISC: 0x100,
  ALLMULTI: 0x200, MASTER: 0x400, SLAVE: 0x800, MULTICAST: 0x1000, PORTSEL: 0x2000, AUTOMEDIA: 0x4000, DYNAMIC: 0x8000,
  LOWER_UP: 0x10000 | 0x40, DORMANT: 0x20000, ECHO: 0x40000,
};
export const IFF_UP = 0x1, IFF_NOARP = 0x80;
export const flagsOf = (l: JsonLink) => l.flags.reduce((f, n) => f | (FLAG_BITS[n] ?? 0), 0);

// The kernel's MACVLAN_MODE_* (if_link.h), as CRIU keeps them.
const MACVLAN_MODES: Record<string, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 };
const mac = (a: string | undefined) => (a ? Buffer.from(a.split(':').map((h) => parseInt(h, 16))) : undefined);
const macText = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** This thread's namespace's devices as the images hold them, or why one cannot be dumped. */
export function readDevices(links: JsonLink[]): { devs: NetDeviceEntry[]; problems: string[] } {
  const problems: string[] = [];
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const devs = links.map((l) => {
    const kind = l.linkinfo?.info_kind;
    const type = l.ifname === 'lo' && l.flags.includes('LOOPBACK') ? NdType.LOOPBACK : kind === 'bridge' ? NdType.BRIDGE : kind === 'veth' ? NdType.VETH : kind === 'macvlan' ? NdType.MACVLAN : kind === 'tun' ? NdType.TUN : undefined;
    if (type === undefined) {
      problems.push(`it has device ${l.ifname}${kind ? ` of kind ${kind}` : ''}, which stasis cannot make again (it makes bridges, veth pairs, macvlans and tun and tap devices)`);
      return undefined;
    }
    const e = create(NetDeviceEntrySchema, {
      type, ifindex: l.ifindex, mtu: l.mtu, flags: flagsOf(l), name: l.ifname,
      conf4: readConf('ipv4', l.ifname), conf6: readConf('ipv6', l.ifname),
    });
    if (type !== NdType.LOOPBACK) {
      const a = mac(l.address);
      if (a) e.address = a;
    }
    if (l.master !== undefined) {
      const m = byName.get(l.master);
      if (m) e.master = m.ifindex;
      else problems.push(`its device ${l.ifname} has a master outside it`);
    }
    if (type === NdType.VETH) {
      // CRIU 4.2 writes the peer's ifindex and namespace; stasis knows only peers inside or outside.
      const peer = l.link !== undefined ? byName.get(l.link) : undefined;
      if (peer) e.peerIfindex = peer.ifindex;
      else if (l.link_netnsid === undefined) problems.push(`its veth ${l.ifname} has no peer stasis can find`);
    }
    if (type === NdType.MACVLAN) {
      const mode = MACVLAN_MODES[l.linkinfo?.info_data?.mode ?? ''];
      const f = l.linkinfo?.info_data?.flags;
      if (mode === undefined || l.link_netnsid === undefined) problems.push(`its macvlan ${l.ifname} is ${mode === undefined ? `in mode ${l.linkinfo?.info_data?.mode}` : 'on a device inside the namespace'}, which stasis cannot make again`);
      else if (f !== undefined && (Array.isArray(f) ? f.length : f)) problems.push(`its macvlan ${l.ifname} has flags ${JSON.stringify(f)}, which stasis cannot make again`);
      else e.macvlan = create(MacvlanLinkEntrySchema, { mode });
    }
    return e;
  }).filter((e): e is NetDeviceEntry => e !== undefined);
  return { devs, problems };
}

const sq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
export const attrs = (d: NetDeviceEntry) => `name ${sq(d.name)} index ${d.ifindex}${d.address.length ? ` address ${macText(d.address)}` : ''} mtu ${d.mtu}`;
const insidePeer = (d: NetDeviceEntry, devs: NetDeviceEntry[]) => (d.peerIfindex ? devs.find((p) => p.ifindex === d.peerIfindex && p.type === NdType.VETH) : undefined);

/** How the devices made from outside find their host side: `--external` by CRIU's keys. */
export type Externals = ReadonlyMap<string, string>;

/** Why the devices of `devs` made from outside could not be made with `ext`, or undefined. */
export function externalsMissing(devs: NetDeviceEntry[], ext: Externals, what: string): string | undefined {
  for (const d of devs) {
    if (d.type === NdType.VETH && !insidePeer(d, devs) && !ext.get(`veth[${d.name}]`) && !ext.get(`netdev[${d.name}]`)) return `Cannot restore veth ${d.name} of ${what}: its peer was outside the namespace; name the new one with --external veth[${d.name}]:NAME (CRIU's, with @BRIDGE to put it in a bridge), or a veth made beforehand to be moved in with --external netdev[${d.name}]:DEVICE`;
    if (d.type === NdType.MACVLAN && !ext.get(`macvlan[${d.name}]`)) return `Cannot restore macvlan ${d.name} of ${what}: name the host's device it is to be on with --external macvlan[${d.name}]:DEVICE`;
  }
  return undefined;
}

/**
 * The shell commands, run in the host's namespace (or the trial's stand-in for it), that make
 * the devices whose other side is there, their inside end born in the namespace `target`
 * (/proc/PID/ns/net).
 */
export function hostScript(devs: NetDeviceEntry[], ext: Externals, target: string): string {
  // Made from inside, where the ifindex is taken, with the peer sent to the namespace of a
  // sleep started here: `ip` names a namespace by a pid, and stasis's own may be in the target's.
  const out: string[] = ['sleep 60 & S=$!'];
  const inside = (cmd: string) => `nsenter --net=${target} ${cmd}`;
  for (const d of devs) {
    if (d.type === NdType.VETH && !insidePeer(d, devs) && !ext.get(`netdev[${d.name}]`)) {
      const v = ext.get(`veth[${d.name}]`) ?? '';
      const at = v.indexOf('@'), name = at < 0 ? v : v.slice(0, at), bridge = at < 0 ? '' : v.slice(at + 1);
      out.push(`${inside(`ip link add ${attrs(d)} type veth peer name ${sq(name)} netns $S`)} || { kill $S; exit 3; }`);
      if (bridge) out.push(`ip link set dev ${sq(name)} master ${sq(bridge)} || { kill $S; exit 3; }`);
    } else if (d.type === NdType.MACVLAN) {
      out.push(`ip link add link ${sq(ext.get(`macvlan[${d.name}]`) ?? '')} ${attrs(d)} netns ${target.replace(/^\/proc\/(\d+)\/ns\/net$/, '$1')} type macvlan mode ${Object.entries(MACVLAN_MODES).find(([, m]) => m === d.macvlan?.mode)?.[0] ?? 'bridge'} || { kill $S; exit 3; }`);
    }
  }
  if (out.length === 1) return '';
  out.push('kill $S');
  return out.join('\n');
}

/**
 * The veths whose peer was outside that the user made beforehand (`--external netdev[IN]:OUT`,
 * CRIU's): the host's device OUT is moved into the namespace as IN, at IN's ifindex.
 */
export function premadeVeths(devs: NetDeviceEntry[], ext: Externals): { dev: NetDeviceEntry; out: string }[] {
  return devs.flatMap((d) => {
    const out = ext.get(`netdev[${d.name}]`);
    if (out === undefined) return [];
    if (d.type !== NdType.VETH || insidePeer(d, devs)) throw new StasisError('E_RESTORE_FAILED', `Cannot move ${out} in as ${d.name} (--external netdev[${d.name}]): ${d.name} is not a veth whose peer was outside the namespace; stasis moves in only those`);
    return [{ dev: d, out }];
  });
}

/** The shell commands, run in the namespace, that give a device moved in the image's MAC address and MTU (made down: upScript brings it up). */
export function premadeScript(moved: { dev: NetDeviceEntry }[]): string {
  return moved.map(({ dev: d }) => `ip link set dev ${sq(d.name)} down${d.address.length ? ` address ${macText(d.address)}` : ''} mtu ${d.mtu} || exit 3`).join('\n');
}

/** The shell commands, run in the namespace, that make the devices of its own (bridges, veth pairs inside; tun devices made before are given their address and MTU). */
export function insideScript(devs: NetDeviceEntry[]): string {
  const out: string[] = [];
  for (const d of devs) {
    // lo first, as CRIU sets it up (its IPv6 mtu sysctl follows the MTU).
    if (d.type === NdType.LOOPBACK) out.push(`ip link set dev lo mtu ${d.mtu}${d.flags & IFF_UP ? ' up' : ''} || exit 3`);
    if (d.type === NdType.BRIDGE) out.push(`ip link add ${attrs(d)} type bridge || exit 3`);
    // Made already at their ifindex (net-tun.ts makeTunDevices): a tap's MAC address and the MTU.
    if (d.type === NdType.TUN) out.push(`ip link set dev ${sq(d.name)}${d.address.length ? ` address ${macText(d.address)}` : ''} mtu ${d.mtu} || exit 3`);
    const p = d.type === NdType.VETH ? insidePeer(d, devs) : undefined;
    if (p && d.ifindex < p.ifindex) out.push(`ip link add ${attrs(d)} type veth peer ${attrs(p)} || exit 3`);
  }
  return out.join('\n');
}

/** The shell commands that give each device its master, then bring it up (lo's MTU too), once their sysctls are set. */
export function upScript(devs: NetDeviceEntry[]): string {
  const out: string[] = [];
  for (const d of devs) {
    const m = d.master ? devs.find((x) => x.ifindex === d.master) : undefined;
    if (d.master && !m) throw new StasisError('E_RESTORE_FAILED', `Cannot restore device ${d.name}: its master ${d.master} is not in the image`);
    if (m) out.push(`ip link set dev ${sq(d.name)} master ${sq(m.name)} || exit 3`);
    if (d.flags & IFF_NOARP && d.type !== NdType.LOOPBACK) out.push(`ip link set dev ${sq(d.name)} arp off || exit 3`);
  }
  // Masters first, so that a port finds its bridge up.
  const order = [...devs].sort((a, b) => Number(!!a.master) - Number(!!b.master));
  for (const d of order) if (d.flags & IFF_UP && d.type !== NdType.LOOPBACK) out.push(`ip link set dev ${sq(d.name)} up || exit 3`);
  return out.join('\n');
}
