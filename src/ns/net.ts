// Network namespaces with lo alone, as a container engine leaves them or a program makes them
// (`unshare -n`, then addresses, routes and rules of its own). Dumped as CRIU does:
// netdev-<id>.img with lo's flags and MTU, netns-<id>.img, lo's addresses, the routes and the
// rules (net-ip.ts: ifaddr-<id>.img, route-<id>.img, route6-<id>.img, rule-<id>.img), the
// netfilter rules (netfilter.ts: iptables-<id>.img, ip6tables-<id>.img, nftables-<id>.img) and
// the connection tracking entries (net-conntrack.ts), all read before the network lock touches
// the namespace; restored as a new namespace whose lo is set up again, then its addresses,
// routes and rules, then its netfilter rules, then its entries, before any socket of the tree
// is made in it. A namespace with another device, or a net.* sysctl that differs from a new
// namespace's, is refused. `ip` and the netfilter tools run inside the namespace (inNamespace:
// a child spawned meanwhile is born in it).
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { inNamespace, CLONE_NEWNET } from '../sys/index.js';
import { writeImage, readImage, imageExists } from '../image/index.js';
import { NdType, NetDeviceEntrySchema, NetnsEntrySchema, type NetDeviceEntry, type NetnsEntry } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import type { NsKind } from './ns-kind.js';
import { imageRules, loadRules, readRulesAndOwners, rulesFile, rulesRefusal, type NetfilterRules } from './netfilter.js';
import { ipListing, listingScript, listingsDiffer, restoreIp, saveIp, trialRestore, writeIpImages, type IpImages } from './net-ip.js';
import { confDiffers, confScript, parseSysctlState, readConf, readFlatConf, sysctlsRefusal, SYSCTL_STATE } from './net-sysctl.js';
import { conntrackRefusal, readConntrack, readConntrackFile, restoreConntrack, writeConntrack, type ConntrackState } from './net-conntrack.js';

const ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
const IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40, IFF_LOWER_UP = 0x10000;

interface IpLink { ifindex: number; ifname: string; flags: string[]; mtu: number }

function ip(args: string[]): unknown[] {
  try {
    return JSON.parse(execFileSync('ip', ['-j', ...args], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || '[]') as unknown[];
  } catch (e) {
    throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ip ${args.join(' ')} failed (${(e as Error).message.split('\n')[0]}); stasis needs iproute2 to dump one`);
  }
}

/** What a shell script prints in this thread's namespace (a child spawned now is born in it). */
function shell(script: string): string {
  const r = spawnSync('sh', ['-c', script], { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ${(r.error?.message ?? r.stderr).trim()}`);
  return r.stdout;
}

function describe(): { links: IpLink[]; problems: string[] } {
  const links = ip(['addr', 'show']) as IpLink[];
  const problems: string[] = [];
  for (const l of links) if (l.ifname !== 'lo') problems.push(`it has device ${l.ifname}`);
  if (spawnSync('sh', ['-c', 'command -v sysctl'], { env: ENV }).status !== 0) problems.push('stasis cannot compare its sysctls with a new namespace\'s (sysctl, from procps, is not installed)');
  return { links, problems };
}

interface Captured {
  rules: NetfilterRules;
  ct: ConntrackState;
  ip: IpImages;
  devs: NetDeviceEntry[];
  conf: NetnsEntry;
}

/** This thread's namespace's devices (lo alone: check() refused others) and settings, as the images hold them. */
function readConfig(): { devs: NetDeviceEntry[]; conf: NetnsEntry } {
  const devs = (ip(['link', 'show']) as IpLink[]).map((l) => create(NetDeviceEntrySchema, {
    type: NdType.LOOPBACK, ifindex: l.ifindex, mtu: l.mtu, flags: flagsOf(l), name: l.ifname,
    conf4: readConf('ipv4', l.ifname), conf6: readConf('ipv6', l.ifname),
  }));
  const conf = create(NetnsEntrySchema, {
    defConf4: readConf('ipv4', 'default'), allConf4: readConf('ipv4', 'all'),
    defConf6: readConf('ipv6', 'default'), allConf6: readConf('ipv6', 'all'), unixConf: readFlatConf('unix'), ipv4Sysctl: readFlatConf('ipv4-net'),
  });
  return { devs, conf };
}

/**
 * The shell commands that set up a new namespace as the images say, before its addresses are
 * restored (CRIU's order: the sysctls of all and default, then each device and its own).
 */
function setupScript(devs: NetDeviceEntry[], conf: NetnsEntry, what: string): string {
  return [
    confScript('ipv4', 'all', conf.allConf4, what), confScript('ipv4', 'default', conf.defConf4, what),
    confScript('ipv6', 'all', conf.allConf6, what), confScript('ipv6', 'default', conf.defConf6, what),
    confScript('unix', '', conf.unixConf, what), confScript('ipv4-net', '', conf.ipv4Sysctl, what),
    ...devs.flatMap((d) => [linkSetup(d.mtu, d.flags), confScript('ipv4', d.name, d.conf4, what), confScript('ipv6', d.name, d.conf6, what)]),
  ].filter(Boolean).join('\n');
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
function trialRefusal(c: Captured, listing: string, sysctls: string): string | undefined {
  const t = trialRestore(c.ip, setupScript(c.devs, c.conf, 'the namespace'), `${listingScript()}\necho '@@sysctls'\n${SYSCTL_STATE}`);
  if ('why' in t) return t.why;
  const [ipOut = '', sysOut = ''] = t.out.split('@@sysctls\n');
  const diff = listingsDiffer(listing, ipOut);
  return (diff ? `its addresses, routes and rules do not come back the same from CRIU's ifaddr, route and rule images: ${diff}` : undefined)
    ?? sysctlsRefusal(parseSysctlState(sysctls), parseSysctlState(sysOut));
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

/** The shell command that gives lo its MTU and state (the restore runs it, and the dump's trial). */
const linkSetup = (mtu: number, flags: number) => `ip link set dev lo mtu ${mtu}${flags & IFF_UP ? ' up' : ''}`;

const flagsOf = (l: IpLink) => (l.flags.includes('UP') ? IFF_UP | IFF_RUNNING : 0) | (l.flags.includes('LOWER_UP') ? IFF_LOWER_UP : 0) | IFF_LOOPBACK;

export const netNs = {
  name: 'net',
  flag: CLONE_NEWNET,
  check: (pid) => {
    const { problems } = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET, describe);
    return problems.length ? `${[...new Set(problems)].join(', ')}; stasis restores only a network namespace with lo alone` : undefined;
  },
  capture: (pid, tree) => {
    const [{ rules, iptablesNft }, ct, ipImages, listing, sysctls, config] = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET,
      () => [readRulesAndOwners(), readConntrack(), saveIp(), ipListing(), shell(SYSCTL_STATE), readConfig()] as const);
    const state: Captured = { rules, ct, ip: ipImages, ...config };
    const why = (iptablesNft.length ? `its nf_tables table(s) ${iptablesNft.join(', ')} were made by iptables-nft, which would not know them again once nft loads them back (its x_tables matches become nft's own expressions); stasis cannot restore iptables-nft's tables yet` : undefined)
      ?? rulesRefusal(rules) ?? conntrackRefusal(ct, pid, tree) ?? trialRefusal(state, listing, sysctls);
    return why ? { why } : { state };
  },
  dump: (ctx, pid, id, captured) => {
    const { rules, ct, ip: ipImages, devs, conf } = captured as Captured;
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
    const devs = readImage(ctx.imagesDir, 'netdev', id);
    inNamespace(`/proc/${hostPid}/ns/net`, 'net', CLONE_NEWNET, () => {
      const what = `network namespace ${id}`;
      for (const d of devs) if (d.type !== NdType.LOOPBACK) throw new StasisError('E_UNSUPPORTED', `Cannot restore device ${d.name} of ${what}: stasis restores only lo`);
      const conf = readImage(ctx.imagesDir, 'netns', id)[0] ?? create(NetnsEntrySchema, {});
      if (conf.defConf.length || conf.allConf.length || devs.some((d) => d.conf.length)) throw new StasisError('E_UNSUPPORTED', `Cannot restore ${what}: its images hold the sysctls in CRIU's old layout (conf, def_conf, all_conf)`);
      const r = spawnSync('sh', ['-c', setupScript(devs, conf, what)], { env: ENV, encoding: 'utf8' });
      if (r.error || r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot set up the devices and sysctls of ${what}: ${(r.error?.message ?? r.stderr).trim()}`);
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
    ctx.log.info(`network namespace ${id}: ${devs.map((d) => `${d.name}${d.flags & IFF_UP ? ' up' : ''}`).join(', ')}`);
  },
} satisfies NsKind;
