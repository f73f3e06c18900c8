// Network namespaces of the tree's own, as a container engine leaves them or a program makes
// them (`unshare -n`, then devices, addresses, routes, sysctls and rules of its own). Dumped as
// CRIU does: netdev-<id>.img with the devices (net-dev.ts: lo, bridges, veths, macvlans, tun
// and tap devices (net-tun.ts), each with its devconf sysctls), netns-<id>.img with the
// namespace's own sysctls (net-sysctl.ts), the addresses, routes and rules (net-ip.ts:
// ifaddr-, route-, route6-, rule-<id>.img), the netfilter rules (netfilter.ts) and the
// connection tracking entries (net-conntrack.ts), all read before the network lock touches the
// namespace. Before anything is written the images are restored into a scratch namespace,
// which must then list the same devices, addresses, routes and rules and have the same net
// sysctls: what would not come back so is refused. Restored in CRIU's order into the new
// namespace: sysctls of all and default, devices (tun devices first, made by stasis itself),
// their sysctls, masters and state, addresses, routes and rules, netfilter rules, conntrack
// entries, before any socket or tun file of the tree is made in it. `ip` and the netfilter
// tools run inside the namespace (inNamespace: a child spawned meanwhile is born in it).
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { inNamespace, moveLinkToNetns, CLONE_NEWNET } from '../sys/index.js';
import { writeImage, readImage, imageExists } from '../image/index.js';
import { NdType, NetDeviceEntrySchema, NetnsEntrySchema, type NetDeviceEntry, type NetnsEntry } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import type { NsKind } from './ns-kind.js';
import { imageRules, loadRules, readRulesAndOwners, rulesFile, rulesRefusal, type NetfilterRules } from './netfilter.js';
import { ipListing, listingScript, listingsDiffer, restoreIp, saveIp, trialRestore, writeIpImages, type IpImages } from './net-ip.js';
import { confDiffers, confScript, parseSysctlState, readConf, readFlatConf, sysctlsRefusal, SYSCTL_STATE } from './net-sysctl.js';
import { externalsMissing, hostScript, insideScript, premadeScript, premadeVeths, readDevices, upScript, IFF_UP, type JsonLink } from './net-dev.js';
import { crossVeths, crossScript } from './net-nested.js';
import { makeTunDevices, readTunLinks, trialTunFiles, type TunQueues } from './net-tun.js';
import { conntrackRefusal, readConntrack, readConntrackFile, restoreConntrack, writeConntrack, type ConntrackState } from './net-conntrack.js';
import { toolEnv } from './tool-env.js';

function ip(args: string[]): unknown[] {
  try {
    return JSON.parse(execFileSync('ip', ['-j', ...args], { env: toolEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || '[]') as unknown[];
  } catch (e) {
    throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ip ${args.join(' ')} failed (${(e as Error).message.split('\n')[0]}); stasis needs iproute2 to dump one`);
  }
}

/** What a shell script prints in this thread's namespace (a child spawned now is born in it). */
function shell(script: string): string {
  const r = spawnSync('sh', ['-c', script], { env: toolEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ${(r.error?.message ?? r.stderr).trim()}`);
  return r.stdout;
}

function describe(): { problems: string[] } {
  const { problems } = readDevices(ip(['-d', 'link', 'show']) as JsonLink[]);
  if (spawnSync('sh', ['-c', 'command -v sysctl'], { env: toolEnv() }).status !== 0) problems.push('stasis cannot compare its sysctls with a new namespace\'s (sysctl, from procps, is not installed)');
  return { problems };
}

export interface Captured {
  rules: NetfilterRules;
  ct: ConntrackState;
  ip: IpImages;
  devs: NetDeviceEntry[];
  conf: NetnsEntry;
  /** Those whose peer is in another network namespace of the tree: by ifindex, the peer's ifindex and its namespace's link. */
  cross: Map<number, { peerIfindex: number; peerLink: string }>;
  /** The queues of its tun devices the tree's files hold (the trial attaches as many). */
  tunQueues: TunQueues;
}

/**
 * This thread's namespace's devices (check() refused those stasis cannot make) and settings, as
 * the images hold them; the tun devices' links are read with the files of `tree` (net-tun.ts),
 * and `problems` says why one cannot be dumped. `nsIno` is the namespace's inode.
 */
function readConfig(tree: number[], nsIno: number): { devs: NetDeviceEntry[]; conf: NetnsEntry; tunQueues: TunQueues; problems: string[] } {
  const json = ip(['-d', 'link', 'show']) as JsonLink[];
  const { devs } = readDevices(json);
  const { problems, queues } = readTunLinks(devs, json, tree, nsIno);
  const conf = create(NetnsEntrySchema, {
    defConf4: readConf('ipv4', 'default'), allConf4: readConf('ipv4', 'all'),
    defConf6: readConf('ipv6', 'default'), allConf6: readConf('ipv6', 'all'), unixConf: readFlatConf('unix'), ipv4Sysctl: readFlatConf('ipv4-net'),
  });
  return { devs, conf, tunQueues: queues, problems };
}

/**
 * The shell commands that set up a new namespace as the images say, before its addresses are
 * restored, in CRIU's order: the sysctls of all and default (which new devices take), the
 * devices of its own (`inside`), then those made from outside (net-dev.ts hostScript, run
 * between the two), then each device's sysctls, its master and its state (`after`).
 */
function setupScripts(devs: NetDeviceEntry[], conf: NetnsEntry, what: string, local = devs): { inside: string; after: string } {
  const inside = [
    confScript('ipv4', 'all', conf.allConf4, what), confScript('ipv4', 'default', conf.defConf4, what),
    confScript('ipv6', 'all', conf.allConf6, what), confScript('ipv6', 'default', conf.defConf6, what),
    confScript('unix', '', conf.unixConf, what), confScript('ipv4-net', '', conf.ipv4Sysctl, what),
    insideScript(local),
  ];
  const after = [...devs.flatMap((d) => [confScript('ipv4', d.name, d.conf4, what), confScript('ipv6', d.name, d.conf6, what)]), upScript(devs)];
  return { inside: inside.filter(Boolean).join('\n'), after: after.filter(Boolean).join('\n') };
}

/**
 * The trial's stand-in for the host: a second scratch namespace (held by a sleep) where the
 * outside ends of veths go and where a bridge stands in for each macvlan's host device.
 */
function trialHost(devs: NetDeviceEntry[]): { start: string; ext: Map<string, string>; end: string } {
  const ext = new Map<string, string>();
  const lowers: string[] = [];
  devs.forEach((d, i) => {
    if (d.type === NdType.VETH) ext.set(`veth[${d.name}]`, `stasis-t${i}`);
    if (d.type === NdType.MACVLAN) {
      ext.set(`macvlan[${d.name}]`, `stasis-l${i}`);
      lowers.push(`nsenter --net=/proc/$H/ns/net sh -c 'ip link add stasis-l${i} type bridge && ip link set stasis-l${i} up' || exit 3`);
    }
  });
  const start = ['unshare -n sleep 60 & H=$!', 'while [ "$(readlink /proc/$H/ns/net)" = "$(readlink /proc/$$/ns/net)" ]; do sleep 0.01; done', ...lowers].join('\n');
  return { start, ext, end: 'kill $H' };
}

/** The first sysctl of the images this thread's namespace does not have, or undefined. */
function configDiffers(devs: NetDeviceEntry[], conf: NetnsEntry, what: string): string | undefined {
  return confDiffers('ipv4', 'all', conf.allConf4, what) ?? confDiffers('ipv4', 'default', conf.defConf4, what)
    ?? confDiffers('ipv6', 'all', conf.allConf6, what) ?? confDiffers('ipv6', 'default', conf.defConf6, what)
    ?? confDiffers('unix', '', conf.unixConf, what) ?? confDiffers('ipv4-net', '', conf.ipv4Sysctl, what)
    ?? devs.map((d) => confDiffers('ipv4', d.name, d.conf4, what) ?? confDiffers('ipv6', d.name, d.conf6, what)).find(Boolean);
}

/**
 * Why the namespace would not come back as it is, or undefined: its images are restored into a
 * scratch namespace, which must then list the same addresses, routes and rules, and have the
 * same value in every net sysctl.
 */
function trialRefusal(c: Captured, listing: string, sysctls: string, peersUp: ReadonlySet<number>): string | undefined {
  const { inside, after } = setupScripts(c.devs, c.conf, 'the namespace');
  const h = trialHost(c.devs);
  // A stand-in for a peer in another namespace of the tree that is up is brought up: the veth's carrier follows its peer.
  const up = c.devs.flatMap((d) => (peersUp.has(d.ifindex) && h.ext.has(`veth[${d.name}]`) ? [`ip link set dev ${h.ext.get(`veth[${d.name}]`)} up`] : []));
  const host = [hostScript(c.devs, h.ext, '/proc/$T/ns/net'), ...up].filter(Boolean).join('\n');
  const hostPart = host ? `export T=$$\nnsenter --net=/proc/$H/ns/net sh -c '${host.replaceAll("'", "'\\''")}' || exit 3` : '';
  // The carrier follows a peer brought up a moment ago late (the kernel's linkwatch runs on a
  // delay): where the namespace had none without it, the trial waits for it (2 s at most).
  const settle = listing.includes('NO-CARRIER') ? '' : 'i=0; while [ $i -lt 100 ] && ip link show | grep -q NO-CARRIER; do sleep 0.02; i=$((i+1)); done\n';
  // Tun devices are made by stasis, in the scratch namespace, with the files the tree holds.
  const tuns = c.devs.some((d) => d.type === NdType.TUN) ? () => trialTunFiles(c.devs, c.tunQueues) : undefined;
  let t: { out: string } | { why: string };
  try {
    t = trialRestore(c.ip, [h.start, inside, hostPart, after].filter(Boolean).join('\n'), `${settle}${listingScript()}\necho '@@sysctls'\n${SYSCTL_STATE}\n${h.end}`, tuns);
  } catch (err) {
    if (!(err instanceof StasisError)) throw err;
    return `its tun devices cannot be made again as they were read (${err.message})`;
  }
  if ('why' in t) return t.why;
  const [ipOut = '', sysOut = ''] = t.out.split('@@sysctls\n');
  const diff = listingsDiffer(tunOperstate(listing, c.devs), tunOperstate(ipOut, c.devs));
  return (diff ? `its devices, addresses, routes and rules do not come back the same: ${diff}${emptyBridgeHint(c.devs, ipOut)}` : undefined)
    ?? sysctlsRefusal(parseSysctlState(sysctls), parseSysctlState(sysOut));
}

/**
 * Why a bridge with no port came back without its carrier: the kernel drops an empty bridge's
 * carrier as soon as it is given its MAC address (its STP port selection finds no port
 * forwarding), and nothing turns it on again but a port. One that had its carrier cannot be
 * made again with both; CRIU 4.2 restores it with the MAC and without the carrier.
 */
function emptyBridgeHint(devs: readonly NetDeviceEntry[], restored: string): string {
  const lost = devs.filter((d) => d.type === NdType.BRIDGE && !devs.some((p) => p.master === d.ifindex))
    .filter((b) => restored.split('\n').some((l) => l.includes(`: ${b.name}: <NO-CARRIER`)));
  return lost.length ? ` (${lost.map((b) => b.name).join(', ')}: a bridge with no port loses its carrier when it is given its MAC address, so one that had its carrier cannot come back with both)` : '';
}

/**
 * The listing with each tun device that has its carrier and lists operstate UNKNOWN listed UP:
 * the operstate of a device made with its file attached is never worked out (the kernel's
 * linkwatch does so, up to a second after its carrier changes), and the restore's device, made
 * before its files are opened, loses its carrier for the moment (CRIU's does too). The one
 * difference let through; either side may not have been worked out yet.
 */
function tunOperstate(listing: string, devs: readonly NetDeviceEntry[]): string {
  const tuns = new Set(devs.filter((d) => d.type === NdType.TUN).map((d) => d.name));
  return listing.replace(/^(\d+: ([^:@]+)(?:@[^:]+)?: <[^>]*LOWER_UP[^>]*>.* state )UNKNOWN /gm, (all, head: string, name: string) => (tuns.has(name) ? `${head}UP ` : all));
}

/** CRIU's raw rule images of namespace `id` (CRIU writes them empty when there are none). */
function readRulesImages(dir: string, id: number): NetfilterRules {
  const read = (k: keyof NetfilterRules) => {
    try {
      return fs.readFileSync(path.join(dir, rulesFile(k, id)), 'utf8');
    } catch {
      return '';
    }
  };
  return { ip4: read('ip4'), ip6: read('ip6'), nft: read('nft') };
}

export const netNs = {
  name: 'net',
  flag: CLONE_NEWNET,
  check: (pid) => {
    const { problems } = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET, describe);
    return problems.length ? [...new Set(problems)].join(', ') : undefined;
  },
  capture: (pid, tree, peersUp = new Set()) => {
    const nsIno = fs.statSync(`/proc/${pid}/ns/net`).ino;
    const [{ rules, iptablesNft }, ct, ipImages, listing, sysctls, { problems, ...config }] = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET,
      () => [readRulesAndOwners(), readConntrack(), saveIp(), ipListing(), shell(SYSCTL_STATE), readConfig(tree, nsIno)] as const);
    const state: Captured = { rules, ct, ip: ipImages, ...config, cross: new Map() };
    const why = (problems.length ? [...new Set(problems)].join(', ') : undefined) ?? (iptablesNft.length ? `its nf_tables table(s) ${iptablesNft.join(', ')} were made by iptables-nft, which would not know them again once nft loads them back (its x_tables matches become nft's own expressions); stasis cannot restore iptables-nft's tables yet` : undefined)
      ?? rulesRefusal(rules) ?? conntrackRefusal(ct, pid, tree) ?? trialRefusal(state, listing, sysctls, peersUp);
    return why ? { why } : { state };
  },
  dump: (ctx, pid, id, captured) => {
    const { rules, ct, ip: ipImages, devs, conf, cross } = captured as Captured;
    // A veth's peer inside is in this namespace (CRIU's peer_nsid); one in another namespace of the tree names it.
    for (const d of devs) if (d.peerIfindex) d.peerNsid = id;
    for (const d of devs) {
      const c = cross.get(d.ifindex);
      if (c && ctx.nsIdOf) Object.assign(d, { peerIfindex: c.peerIfindex, peerNsid: ctx.nsIdOf(c.peerLink) });
    }
    ctx.note(writeImage(ctx.imagesDir, 'netdev', id, devs));
    ctx.note(writeImage(ctx.imagesDir, 'netns', id, [conf]));
    for (const f of writeIpImages(ctx.imagesDir, id, ipImages)) ctx.note(f);
    // CRIU's raw images: the tools' text, no magic.
    for (const k of ['ip4', 'ip6', 'nft'] as const) {
      if (rules[k]) ctx.note(path.join(ctx.imagesDir, rulesFile(k, id)));
      if (rules[k]) fs.writeFileSync(path.join(ctx.imagesDir, rulesFile(k, id)), rules[k], { mode: 0o600 });
    }
    for (const f of writeConntrack(ctx.imagesDir, id, ct)) ctx.note(f);
    ctx.log.info(`network namespace ${id}: ${rules.ip4 || rules.ip6 ? 'iptables-legacy rules, ' : ''}${rules.nft ? 'nftables rules, ' : ''}${ct.entries.length} connection tracking entries`);
  },
  restore: (ctx, hostPid, id) => {
    // Dumped with --empty-ns net: the namespace stays empty, for the engine to set up.
    if (!imageExists(ctx.imagesDir, 'netdev', id)) {
      ctx.log.info(`network namespace ${id}: restored empty`);
      return;
    }
    const devs = readImage(ctx.imagesDir, 'netdev', id), what = `network namespace ${id}`;
    const conf = readImage(ctx.imagesDir, 'netns', id)[0] ?? create(NetnsEntrySchema, {});
    if (conf.defConf.length || conf.allConf.length || devs.some((d) => d.conf.length)) throw new StasisError('E_UNSUPPORTED', `Cannot restore ${what}: its images hold the sysctls in CRIU's old layout (conf, def_conf, all_conf)`);
    // A peer in another namespace of the tree is made with it (net-nested.ts); one elsewhere (CRIU writes its ifindex there) is outside.
    const cross = crossVeths(devs, id, ctx.nets);
    for (const d of devs) if (d.type === NdType.VETH && d.peerNsid !== id && !cross.includes(d)) d.peerIfindex = 0;
    const local = devs.filter((d) => !cross.includes(d));
    const missing = externalsMissing(local, ctx.netExternals ?? new Map(), what);
    if (missing) throw new StasisError('E_RESTORE_FAILED', missing);
    const { inside, after } = setupScripts(devs, conf, what, local);
    const run = (script: string, where: string) => {
      const r = spawnSync('sh', ['-c', script], { env: toolEnv(), encoding: 'utf8' });
      if (r.error || r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot set up the devices and sysctls of ${what}${where}: ${(r.error?.message ?? r.stderr).trim()}`);
    };
    const target = `/proc/${hostPid}/ns/net`;
    inNamespace(target, 'net', CLONE_NEWNET, () => {
      makeTunDevices(devs, what);
      run(inside, '');
    });
    const pairs = crossScript(ctx.imagesDir, cross, ctx.nets);
    if (pairs) inNamespace(target, 'net', CLONE_NEWNET, () => run(pairs, ' (veths with a peer in another of the tree\'s namespaces)'));
    // The veths made beforehand are moved in, the others whose peer was outside and the
    // macvlans made, from stasis's namespace.
    const moved = premadeVeths(local, ctx.netExternals ?? new Map());
    if (moved.length) {
      const nsFd = fs.openSync(target, 'r');
      try {
        for (const { dev, out } of moved) {
          const found = (ip(['-d', 'link', 'show']) as JsonLink[]).find((l) => l.ifname === out);
          if (!found) throw new StasisError('E_RESTORE_FAILED', `Cannot restore veth ${dev.name} of ${what}: the device ${out} to move in (--external netdev[${dev.name}]:${out}) is not in stasis's namespace`);
          if (found.linkinfo?.info_kind !== 'veth') throw new StasisError('E_RESTORE_FAILED', `Cannot restore veth ${dev.name} of ${what}: the device ${out} to move in is ${found.linkinfo?.info_kind ? `a ${found.linkinfo.info_kind}` : 'a physical device'}, not a veth`);
          try {
            moveLinkToNetns(found.ifindex, nsFd, dev.name, dev.ifindex);
          } catch (e) {
            throw new StasisError('E_RESTORE_FAILED', `Cannot move ${out} into ${what} as ${dev.name} at index ${dev.ifindex}: ${(e as Error).message}`, { cause: e });
          }
        }
      } finally {
        fs.closeSync(nsFd);
      }
      inNamespace(target, 'net', CLONE_NEWNET, () => run(premadeScript(moved), ''));
    }
    const host = hostScript(local, ctx.netExternals ?? new Map(), target);
    if (host) run(host, ' (from the host\'s namespace)');
    inNamespace(target, 'net', CLONE_NEWNET, () => {
      run(after, '');
      const diff = configDiffers(devs, conf, what);
      if (diff) throw new StasisError('E_RESTORE_FAILED', `The sysctls of ${what} were restored differently: ${diff}`);
      restoreIp(ctx.imagesDir, id, what);
      const rules = imageRules(readRulesImages(ctx.imagesDir, id), what), entries = readConntrackFile(ctx.imagesDir, id);
      loadRules(rules, what);
      restoreConntrack(entries, what);
      if (rules.ip4 || rules.ip6 || rules.nft || entries.length) {
        ctx.log.info(`${what}: ${[rules.ip4 && 'iptables-legacy', rules.ip6 && 'ip6tables-legacy', rules.nft && 'nftables'].filter(Boolean).join(', ') || 'no'} rules restored and listed the same; ${entries.length} connection tracking entries made and read back the same`);
      }
    });
    ctx.nets?.filled.add(id);
    ctx.log.info(`${what}: ${devs.map((d) => `${d.name}${d.flags & IFF_UP ? ' up' : ''}`).join(', ')}`);
  },
} satisfies NsKind;
