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
import { NdType, NetDeviceEntrySchema, NetnsEntrySchema } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import type { NsKind } from './ns-kind.js';
import { imageRules, loadRules, readRulesAndOwners, rulesFile, rulesRefusal, type NetfilterRules } from './netfilter.js';
import { ipListing, ipRefusal, restoreIp, saveIp, writeIpImages, type IpImages } from './net-ip.js';
import { conntrackRefusal, readConntrack, readConntrackFile, restoreConntrack, writeConntrack, type ConntrackState } from './net-conntrack.js';

const ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
const IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40, IFF_LOWER_UP = 0x10000;
const COUNTS = new Set(['net.netfilter.nf_conntrack_count']);

interface IpLink { ifindex: number; ifname: string; flags: string[]; mtu: number }

function ip(args: string[]): unknown[] {
  try {
    return JSON.parse(execFileSync('ip', ['-j', ...args], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || '[]') as unknown[];
  } catch (e) {
    throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ip ${args.join(' ')} failed (${(e as Error).message.split('\n')[0]}); stasis needs iproute2 to dump one`);
  }
}

/** This thread's namespace's net.* sysctls, as `sysctl -a` prints them (procps), or undefined without it. */
function netSysctls(prefix: string[] = []): Map<string, string> | undefined {
  const r = spawnSync(prefix[0] ?? 'sysctl', [...prefix.slice(1), ...(prefix.length ? ['sysctl'] : []), '-a'], { env: ENV, encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.error || typeof r.stdout !== 'string' || !r.stdout) return undefined;
  const out = new Map<string, string>();
  for (const l of r.stdout.split('\n')) {
    const m = /^(net\.\S+) = (.*)$/.exec(l);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The sysctls set apart from a new namespace's (which stasis's restore makes): none may be. */
function changedSysctls(): string[] {
  const theirs = netSysctls(), fresh = netSysctls(['unshare', '-n']);
  if (!theirs || !fresh) return ['stasis cannot compare its sysctls with a new namespace\'s (sysctl, from procps, is not installed)'];
  // nf_conntrack_count is no setting but the table's size: its entries are restored (net-conntrack.ts).
  const changed = [...theirs].filter(([k, v]) => fresh.has(k) && fresh.get(k) !== v && !COUNTS.has(k)).map(([k, v]) => `${k} = ${v} (a new namespace has ${fresh.get(k)})`);
  return changed.length ? [`it has sysctls of its own: ${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ` and ${changed.length - 3} more` : ''}`] : [];
}

function describe(): { links: IpLink[]; problems: string[] } {
  const links = ip(['addr', 'show']) as IpLink[];
  const problems: string[] = [];
  for (const l of links) if (l.ifname !== 'lo') problems.push(`it has device ${l.ifname}`);
  problems.push(...changedSysctls());
  return { links, problems };
}

interface Captured {
  rules: NetfilterRules;
  ct: ConntrackState;
  ip: IpImages;
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
    const [{ rules, iptablesNft }, ct, ipImages, listing, links] = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET,
      () => [readRulesAndOwners(), readConntrack(), saveIp(), ipListing(), ip(['link', 'show']) as IpLink[]] as const);
    const why = (iptablesNft.length ? `its nf_tables table(s) ${iptablesNft.join(', ')} were made by iptables-nft, which would not know them again once nft loads them back (its x_tables matches become nft's own expressions); stasis cannot restore iptables-nft's tables yet` : undefined)
      ?? rulesRefusal(rules) ?? conntrackRefusal(ct, pid, tree) ?? ipRefusal(ipImages, links.map((l) => linkSetup(l.mtu, flagsOf(l))).join('\n'), listing);
    return why ? { why } : { state: { rules, ct, ip: ipImages } satisfies Captured };
  },
  dump: (ctx, pid, id, captured) => {
    const { rules, ct, ip: ipImages } = captured as Captured;
    const { links } = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET, describe);
    ctx.note(writeImage(ctx.imagesDir, 'netdev', id, links.map((l) => create(NetDeviceEntrySchema, {
      type: NdType.LOOPBACK, ifindex: l.ifindex, mtu: l.mtu, flags: flagsOf(l), name: l.ifname,
    }))));
    ctx.note(writeImage(ctx.imagesDir, 'netns', id, [create(NetnsEntrySchema, {})]));
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
      for (const d of devs) {
        if (d.type !== NdType.LOOPBACK) throw new StasisError('E_UNSUPPORTED', `Cannot restore device ${d.name} of network namespace ${id}: stasis restores only lo`);
        const r = spawnSync('sh', ['-c', linkSetup(d.mtu, d.flags)], { env: ENV, encoding: 'utf8' });
        if (r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot set up lo in the restored network namespace: ${linkSetup(d.mtu, d.flags)}: ${r.stderr?.trim() || r.error?.message}`);
      }
      const what = `network namespace ${id}`;
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
