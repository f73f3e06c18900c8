// The net sysctls of a network namespace, CRIU's way (criu/net.c net_conf_op, dump_netns_conf,
// restore_netns_conf, restore_link): the devconf sysctls of `all` and `default` (IPv4 and IPv6)
// and net.unix.max_dgram_qlen in netns-<id>.img, each device's own in its NetDeviceEntry
// (conf4, conf6), and net.ipv4.ping_group_range (ipv4_sysctl), every list in CRIU's order of
// names below. They are written before the
// devices come up and their addresses are restored: `all` first, then `default`, then each
// device's, accept_redirects last of each list (it depends on forwarding), only where the value
// differs from what the kernel has then (`default` and `all` reach the devices). The restore
// reads every one back. What these lists do not hold (net.core.somaxconn, a
// devconf sysctl CRIU does not know) is not restored: the dump refuses a namespace in which
// any net sysctl differs from what a new namespace set up this way gets (net.ts runs that trial).
import fs from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { SysctlEntrySchema, SysctlType, type SysctlEntry } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';

// CRIU's lists, in its order: an image's conf4[i] is DEVCONFS4[i]. Changing them changes the format.
export const DEVCONFS4 = [
  'accept_local', 'accept_redirects', 'accept_source_route', 'arp_accept', 'arp_announce', 'arp_filter', 'arp_ignore',
  'arp_notify', 'bootp_relay', 'disable_policy', 'disable_xfrm', 'force_igmp_version', 'forwarding',
  'igmpv2_unsolicited_report_interval', 'igmpv3_unsolicited_report_interval', 'log_martians', 'medium_id',
  'promote_secondaries', 'proxy_arp', 'proxy_arp_pvlan', 'route_localnet', 'rp_filter', 'secure_redirects',
  'send_redirects', 'shared_media', 'src_valid_mark', 'tag', 'ignore_routes_with_linkdown', 'drop_gratuitous_arp',
  'drop_unicast_in_l2_multicast',
] as const;
export const DEVCONFS6 = [
  'accept_dad', 'accept_ra', 'accept_ra_defrtr', 'accept_ra_from_local', 'accept_ra_min_hop_limit', 'accept_ra_mtu',
  'accept_ra_pinfo', 'accept_ra_rt_info_max_plen', 'accept_ra_rtr_pref', 'accept_redirects', 'accept_source_route',
  'autoconf', 'dad_transmits', 'disable_ipv6', 'drop_unicast_in_l2_multicast', 'drop_unsolicited_na',
  'force_mld_version', 'force_tllao', 'forwarding', 'hop_limit', 'ignore_routes_with_linkdown', 'keep_addr_on_down',
  'max_addresses', 'max_desync_factor', 'mldv1_unsolicited_report_interval', 'mldv2_unsolicited_report_interval', 'mtu',
  'ndisc_notify', 'optimistic_dad', 'proxy_ndp', 'regen_max_retry', 'router_probe_interval', 'router_solicitation_delay',
  'router_solicitation_interval', 'router_solicitations', 'stable_secret', 'suppress_frag_ndisc', 'temp_prefered_lft',
  'temp_valid_lft', 'use_oif_addrs_only', 'use_optimistic', 'use_tempaddr',
] as const;
export const UNIX_CONF = ['max_dgram_qlen'] as const;
export const IPV4_SYSCTL = ['ping_group_range'] as const;

export type Proto = 'ipv4' | 'ipv6';
/** The lists of sysctls that are not a device's: net.unix's, and those of net.ipv4 itself. */
type Flat = 'unix' | 'ipv4-net';
const NAMES = { ipv4: DEVCONFS4, ipv6: DEVCONFS6 } as const;
const isString = (name: string) => name === 'stable_secret' || name === 'ping_group_range';
const confFile = (proto: Proto | Flat, target: string, name: string) => (proto === 'unix' ? `/proc/sys/net/unix/${name}` : proto === 'ipv4-net' ? `/proc/sys/net/ipv4/${name}` : `/proc/sys/net/${proto}/conf/${target}/${name}`);

/** One sysctl of this thread's namespace; no value where the kernel has no such file (or, for stable_secret, none set: EIO). */
function readOne(file: string, str: boolean): SysctlEntry {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return create(SysctlEntrySchema, { type: str ? SysctlType.CTL_STR : SysctlType.CTL_32 });
  }
  // CRIU keeps a string as the kernel prints it, its newline too.
  if (str) return create(SysctlEntrySchema, { type: SysctlType.CTL_STR, sarg: text });
  const v = Number(text.trim());
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new StasisError('E_UNSUPPORTED', `Cannot dump sysctl ${file.slice(10).replaceAll('/', '.')}: its value ${JSON.stringify(text.trim())} is not one 32-bit number`);
  return create(SysctlEntrySchema, { type: SysctlType.CTL_32, iarg: v });
}

/** The devconf sysctls of `target` (all, default, a device) of this thread's namespace, in CRIU's order. */
export function readConf(proto: Proto, target: string): SysctlEntry[] {
  return NAMES[proto].map((n) => readOne(confFile(proto, target, n), isString(n)));
}

/** net.unix's sysctls, or net.ipv4's own; none at all where the kernel has none (CRIU leaves the list out then). */
export function readFlatConf(kind: Flat): SysctlEntry[] {
  const c = (kind === 'unix' ? UNIX_CONF : IPV4_SYSCTL).map((n) => readOne(confFile(kind, '', n), isString(n)));
  return c.some(hasValue) ? c : [];
}

const hasValue = (e: SysctlEntry) => (e.type === SysctlType.CTL_STR ? isFieldSet(e, SysctlEntrySchema.field.sarg) : isFieldSet(e, SysctlEntrySchema.field.iarg));
const valueOf = (e: SysctlEntry) => (e.type === SysctlType.CTL_STR ? e.sarg : String(e.iarg));
const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

function named(proto: Proto | Flat, conf: SysctlEntry[], what: string): [string, SysctlEntry][] {
  const names: readonly string[] = proto === 'unix' ? UNIX_CONF : proto === 'ipv4-net' ? IPV4_SYSCTL : NAMES[proto];
  if (conf.length > names.length) throw new StasisError('E_UNSUPPORTED', `Cannot restore the ${proto} sysctls of ${what}: the image holds ${conf.length}, stasis knows ${names.length} (a newer CRIU's)`);
  return conf.map((e, i) => [names[i]!, e] as [string, SysctlEntry]).filter(([, e]) => hasValue(e));
}

/**
 * The shell commands that write `conf` of `target` into the namespace they run in: each value
 * that differs from the kernel's at that moment, accept_redirects last.
 */
export function confScript(proto: Proto | Flat, target: string, conf: SysctlEntry[], what: string): string {
  const list = named(proto, conf, what);
  const ordered = [...list.filter(([n]) => n !== 'accept_redirects'), ...list.filter(([n]) => n === 'accept_redirects')];
  return ordered.map(([n, e]) => {
    // $(cat) drops the newline a string keeps; a number is written with one.
    const f = quote(confFile(proto, target, n)), v = valueOf(e).replace(/\n$/, ''), q = quote(v);
    return `[ "$(cat ${f} 2>/dev/null)" = ${q} ] || printf '%s\\n' ${q} > ${f} || { echo "cannot write "${q}" to "${f} >&2; exit 3; }`;
  }).join('\n');
}

/** The first sysctl of `conf` whose value this thread's namespace does not have, or undefined. */
export function confDiffers(proto: Proto | Flat, target: string, conf: SysctlEntry[], what: string): string | undefined {
  for (const [n, e] of named(proto, conf, what)) {
    const now = readOne(confFile(proto, target, n), isString(n));
    if (!hasValue(now) || valueOf(now) !== valueOf(e)) return `${confFile(proto, target, n).slice(10).replaceAll('/', '.')} is ${hasValue(now) ? valueOf(now) : 'missing'}, not ${valueOf(e)}`;
  }
  return undefined;
}

// Every net sysctl as procps prints it, and the stable secrets it leaves out (reading one that is not set fails).
export const SYSCTL_STATE = `sysctl -a 2>/dev/null | grep '^net\\.'
for f in /proc/sys/net/ipv6/conf/*/stable_secret; do s=$(cat "$f" 2>/dev/null) && echo "$f = $s"; done
true`;
// Not settings: the size of the conntrack table (its entries are restored: net-conntrack.ts).
const COUNTS = new Set(['net.netfilter.nf_conntrack_count']);

export function parseSysctlState(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of out.split('\n')) {
    const r = /^(net\.\S+|\/proc\/sys\/net\/\S+) = (.*)$/.exec(l);
    if (r && !COUNTS.has(r[1]!)) m.set(r[1]!.replace(/^\/proc\/sys\//, '').replaceAll('/', '.'), r[2]!);
  }
  return m;
}

/** Why the namespace whose sysctls are `theirs` would not come back so, given what a trial restore gave (`trial`), or undefined. */
export function sysctlsRefusal(theirs: Map<string, string>, trial: Map<string, string>): string | undefined {
  // A namespace a user namespace owns shows fewer (net.core.xfrm_*, ...) than the trial's.
  const changed = [...theirs.keys()].filter((k) => theirs.get(k) !== trial.get(k))
    .map((k) => `${k} = ${theirs.get(k) ?? '(none)'} (a new namespace has ${trial.get(k) ?? 'none'})`);
  return changed.length ? `it has sysctls of its own: ${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ` and ${changed.length - 3} more` : ''}` : undefined;
}
