// Network namespaces, as a container engine leaves them: empty but for lo. Dumped as CRIU
// does (netdev-<id>.img with lo's flags and MTU, netns-<id>.img), restored as a new namespace
// whose lo is set up again; a namespace with anything more (another device, an address or
// route of its own, netfilter rules, a net.* sysctl that differs from a new namespace's) is
// refused. `ip` and the netfilter tools run inside the
// namespace (inNamespace: a child spawned meanwhile is born in it).
import { execFileSync, spawnSync } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { inNamespace, CLONE_NEWNET } from '../sys/index.js';
import { writeImage, readImage, imageExists } from '../image/index.js';
import { NdType, NetDeviceEntrySchema, NetnsEntrySchema } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import type { NsKind } from './ns-kind.js';

const ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
const IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40, IFF_LOWER_UP = 0x10000;
const LO_DEFAULT = new Set(['inet 127.0.0.1/8', 'inet6 ::1/128']);

interface IpLink { ifindex: number; ifname: string; flags: string[]; mtu: number; addr_info?: { family: string; local: string; prefixlen: number }[] }
interface IpRoute { protocol?: string; dst?: string; dev?: string }

function ip(args: string[]): unknown[] {
  try {
    return JSON.parse(execFileSync('ip', ['-j', ...args], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || '[]') as unknown[];
  } catch (e) {
    throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ip ${args.join(' ')} failed (${(e as Error).message.split('\n')[0]}); stasis needs iproute2 to dump one`);
  }
}

/**
 * Rules of the netfilter tools this machine has, in this thread's namespace. The legacy
 * tables are asked apart: an iptables-save of the nft kind does not see them (zdtm's
 * socket-tcp-ipt-nfconntrack sets its rules with iptables-legacy).
 */
function netfilterRules(): string[] {
  const out: string[] = [];
  const tools = [['iptables-save', []], ['ip6tables-save', []], ['iptables-legacy-save', []], ['ip6tables-legacy-save', []], ['nft', ['list', 'ruleset']]] as const;
  for (const [tool, args] of tools) {
    const r = spawnSync(tool, args, { env: ENV, encoding: 'utf8' });
    if (r.error || r.status !== 0) continue;
    const rules = r.stdout.split('\n').filter((l) => (tool === 'nft' ? l.trim() !== '' : l.startsWith('-A')));
    if (rules.length) out.push(`${rules.length} ${tool === 'nft' ? 'nftables' : tool.replace('-save', '')} line(s)`);
  }
  return out;
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
  const changed = [...theirs].filter(([k, v]) => fresh.has(k) && fresh.get(k) !== v).map(([k, v]) => `${k} = ${v} (a new namespace has ${fresh.get(k)})`);
  return changed.length ? [`it has sysctls of its own: ${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ` and ${changed.length - 3} more` : ''}`] : [];
}

function describe(): { links: IpLink[]; problems: string[] } {
  const links = ip(['addr', 'show']) as IpLink[];
  const problems: string[] = [];
  for (const l of links) {
    if (l.ifname !== 'lo') {
      problems.push(`it has device ${l.ifname}`);
      continue;
    }
    for (const a of l.addr_info ?? []) {
      const s = `${a.family} ${a.local}/${a.prefixlen}`;
      if (!LO_DEFAULT.has(s)) problems.push(`lo has address ${a.local}/${a.prefixlen}`);
    }
  }
  for (const r of [...ip(['route', 'show', 'table', 'all']), ...ip(['-6', 'route', 'show', 'table', 'all'])] as IpRoute[]) {
    if (r.protocol !== 'kernel') problems.push(`it has route ${r.dst ?? '?'}${r.dev ? ` dev ${r.dev}` : ''}`);
  }
  problems.push(...netfilterRules().map((n) => `it has netfilter rules (${n})`));
  problems.push(...changedSysctls());
  return { links, problems };
}

const flagsOf = (l: IpLink) => (l.flags.includes('UP') ? IFF_UP | IFF_RUNNING : 0) | (l.flags.includes('LOWER_UP') ? IFF_LOWER_UP : 0) | IFF_LOOPBACK;

export const netNs = {
  name: 'net',
  flag: CLONE_NEWNET,
  check: (pid) => {
    const { problems } = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET, describe);
    return problems.length ? `${[...new Set(problems)].join(', ')}; stasis restores only a network namespace with lo alone` : undefined;
  },
  dump: (ctx, pid, id) => {
    const { links } = inNamespace(`/proc/${pid}/ns/net`, 'net', CLONE_NEWNET, describe);
    ctx.note(writeImage(ctx.imagesDir, 'netdev', id, links.map((l) => create(NetDeviceEntrySchema, {
      type: NdType.LOOPBACK, ifindex: l.ifindex, mtu: l.mtu, flags: flagsOf(l), name: l.ifname,
    }))));
    ctx.note(writeImage(ctx.imagesDir, 'netns', id, [create(NetnsEntrySchema, {})]));
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
        const args = ['link', 'set', 'dev', 'lo', 'mtu', String(d.mtu), ...(d.flags & IFF_UP ? ['up'] : [])];
        const r = spawnSync('ip', args, { env: ENV, encoding: 'utf8' });
        if (r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot set up lo in the restored network namespace: ip ${args.join(' ')}: ${r.stderr?.trim() || r.error?.message}`);
      }
    });
    ctx.log.info(`network namespace ${id}: ${devs.map((d) => `${d.name}${d.flags & IFF_UP ? ' up' : ''}`).join(', ')}`);
  },
} satisfies NsKind;
