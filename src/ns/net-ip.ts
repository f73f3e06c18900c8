// The addresses, routes and rules of a network namespace, CRIU's way (criu/net.c dump_ifaddr,
// dump_route, dump_rule): the raw images ifaddr-<id>.img, route-<id>.img, route6-<id>.img and
// rule-<id>.img hold what `ip addr save`, `ip route save`, `ip -6 route save` and `ip rule save`
// print (rtnetlink messages as the kernel sent them, behind iproute2's magic), and the restore
// gives them back to `ip ... restore` (the rules after the kernel's default ones are flushed,
// as CRIU does). What the images cannot carry (a route of another table than main, an IPv6
// rule, an address whose lifetime runs out) is caught at dump: the images are restored into a
// scratch namespace set up as the restore will set it up, which must then list the same
// addresses, routes and rules. The restore reads the new namespace back and compares it with
// the images.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { inNewNetns } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { toolEnv } from './tool-env.js';


export const IP_IMAGES = ['ifaddr', 'route', 'route6', 'rule'] as const;
export type IpImage = (typeof IP_IMAGES)[number];
export type IpImages = Record<IpImage, Buffer>;

const SAVE: Record<IpImage, string[]> = { ifaddr: ['addr', 'save'], route: ['route', 'save'], route6: ['-6', 'route', 'save'], rule: ['rule', 'save'] };
// How each image reads back as text; rules have no showdump: their messages are compared.
const SHOW: Record<Exclude<IpImage, 'rule'>, string[]> = { ifaddr: ['addr', 'showdump'], route: ['route', 'showdump'], route6: ['route', 'showdump'] };

export const ipImageFile = (k: IpImage, id: number) => `${k}-${id}.img`;

// Everything compared between the dumped namespace and its trial copy, each listing after a marker.
// A device's peer in another namespace shows as @ifN, N its ifindex there (which a new peer
// does not keep), and link-netnsid N, N that namespace's number in this one (the trial puts
// every outside peer in one stand-in namespace); a bridge's and a port's timers run; an IPv6
// address is tentative while its DAD runs, which a restored one goes through again.
const NORMALIZE = "sed -E 's/@if[0-9]+/@if/; s/ link-netnsid [0-9]+/ link-netnsid/; s/ (hello|tcn|topology_change|gc|hold|message_age|forward_delay)_timer +[0-9.]+//g; s/ tentative//'";
const LISTING = [['devices', 'ip -d link show'], ['addresses', 'ip addr show'], ['routes', 'ip route show table all'], ['IPv6 routes', 'ip -6 route show table all'],
  ['rules', 'ip rule show'], ['IPv6 rules', 'ip -6 rule show']] as const;
// An IPv6 address's DAD (a second or so after its device comes up) adds its local route when
// it ends: the listing waits for it, 3 s at most.
const DAD_WAIT = 'i=0; while [ $i -lt 150 ] && ip addr show | grep -q " tentative"; do sleep 0.02; i=$((i+1)); done';
export const listingScript = () => [DAD_WAIT, ...LISTING.map(([k, cmd]) => `echo '@@${k}'; ${cmd} | ${NORMALIZE}`)].join('\n');

/** This thread's namespace's images (a child spawned now is born in it). */
export function saveIp(): IpImages {
  const out = {} as IpImages;
  for (const k of IP_IMAGES) {
    const r = spawnSync('ip', SAVE[k], { env: toolEnv(), maxBuffer: 64 << 20 });
    // CRIU too leaves the rules out where `ip rule save` is not supported.
    if (r.error || (r.status !== 0 && k !== 'rule')) throw new StasisError('E_UNSUPPORTED', `Cannot look into the network namespace: ip ${SAVE[k].join(' ')} failed (${r.error?.message ?? r.stderr.toString().trim()}); stasis needs iproute2 to dump one`);
    out[k] = r.status === 0 ? r.stdout : Buffer.alloc(0);
  }
  return out;
}

/** The namespace's addresses, routes and rules as `ip` lists them (a child spawned now is born in it). */
export function ipListing(): string {
  const r = spawnSync('sh', ['-c', listingScript()], { env: toolEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot list the network namespace's addresses and routes: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

/** The first line where listing `b` differs from `a`, named by what it lists, or undefined. */
export function listingsDiffer(a: string, b: string): string | undefined {
  const x = a.split('\n'), y = b.split('\n');
  const i = x.findIndex((l, n) => l !== y[n]);
  if (i < 0 && x.length === y.length) return undefined;
  const at = i >= 0 ? i : Math.min(x.length, y.length);
  const section = x.slice(0, at + 1).reverse().find((l) => l.startsWith('@@'))?.slice(2) ?? 'listing';
  return `its ${section} list ${JSON.stringify((y[at] ?? '(nothing)').trim())} where they listed ${JSON.stringify((x[at] ?? '(nothing)').trim())}`;
}

/** The shell commands that restore the images of namespace `id` in `dir` into the namespace they run in (CRIU's order). */
export function restoreScript(dir: string, id: number): string {
  const f = (k: IpImage) => `'${path.join(dir, ipImageFile(k, id))}'`;
  // `ip addr restore` and `ip route restore` report an address or route the kernel made
  // already (::1, a prefix route) and go on: what they leave is compared afterwards.
  return [
    `[ -s ${f('ifaddr')} ] && ip addr restore < ${f('ifaddr')}`,
    `[ -s ${f('route')} ] && ip route restore < ${f('route')}`,
    `[ -s ${f('route6')} ] && ip route restore < ${f('route6')}`,
    // The kernel's default rules would be there twice (fib_default_rules_init).
    `if [ -s ${f('rule')} ]; then ip rule flush; ip rule delete table local; ip rule restore < ${f('rule')} || exit 3; fi`,
    'true',
  ].join('\n');
}

/** The messages of a rule image with their sequence numbers and port ids zeroed (iproute2's 4-byte magic first). */
function ruleMessages(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let off = 4; off + 16 <= out.length;) {
    const len = out.readUInt32LE(off);
    if (len < 16) break;
    out.fill(0, off + 8, off + 16);
    off += (len + 3) & ~3;
  }
  return out;
}

function show(k: Exclude<IpImage, 'rule'>, b: Buffer): string {
  if (!b.length) return '';
  const r = spawnSync('ip', SHOW[k], { env: toolEnv(), input: b, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot read ${k} image: ip ${SHOW[k].join(' ')} failed (${r.error?.message ?? r.stderr.trim()})`);
  // A route is linkdown while its device has no carrier, an address tentative while its DAD
  // runs: states of the moment, not what the images carry (a veth whose peer is in a namespace
  // of the tree filled later has its carrier once that one is up, restore/nested-nets.ts).
  return r.stdout.replace(/ (linkdown|tentative)\b/g, '');
}

/** What of this thread's namespace differs from `images` (read back as they were written), or undefined. */
export function imagesDiffer(images: IpImages): string | undefined {
  const now = saveIp();
  for (const k of ['ifaddr', 'route', 'route6'] as const) {
    const want = show(k, images[k]), got = show(k, now[k]);
    if (want !== got) {
      const w = want.split('\n'), g = got.split('\n'), i = Math.max(0, w.findIndex((l, n) => l !== g[n]));
      return `${ipImageFile(k, 0).replace('-0', '-N')} lists ${JSON.stringify(w[i] ?? '(nothing)')}, the namespace ${JSON.stringify(g[i] ?? '(nothing)')}`;
    }
  }
  if (images.rule.length && !ruleMessages(images.rule).equals(ruleMessages(now.rule))) return 'its routing rules are not those of rule-N.img';
  return undefined;
}

/** Reads the images of namespace `id` (CRIU writes them all; an older or `--empty-ns` dump may lack some). */
export function readIpImages(dir: string, id: number): IpImages {
  const out = {} as IpImages;
  for (const k of IP_IMAGES) {
    try {
      out[k] = fs.readFileSync(path.join(dir, ipImageFile(k, id)));
    } catch {
      out[k] = Buffer.alloc(0);
    }
  }
  return out;
}

export function writeIpImages(dir: string, id: number, images: IpImages): string[] {
  return IP_IMAGES.map((k) => {
    const f = path.join(dir, ipImageFile(k, id));
    fs.writeFileSync(f, images[k], { mode: 0o600 });
    return f;
  });
}

/**
 * What a scratch namespace (`unshare -n`) prints when `setup` (the shell commands that set up
 * its devices and sysctls, as the restore will), then the images, then `list` run in it: the
 * dump's trial of its restore. Or why it failed. `prepare` first makes in it, from this thread,
 * what the restore makes from stasis (tun devices), and returns what lets go of that.
 */
export function trialRestore(images: IpImages, setup: string, list: string, prepare?: () => () => void): { out: string } | { why: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-ip-'));
  try {
    writeIpImages(dir, 0, images);
    const script = `${setup}\n${restoreScript(dir, 0)}\n${list}`;
    const run = () => spawnSync('sh', ['-c', script], { env: toolEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
    // What stasis makes itself in the scratch namespace (tun devices and their files) is made from this thread, in it.
    const r = prepare ? inNewNetns(() => {
      const release = prepare();
      try {
        return run();
      } finally {
        release();
      }
    }) : spawnSync('unshare', ['-n', 'sh', '-c', script], { env: toolEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error || r.status !== 0) return { why: `its devices, sysctls, addresses and routes cannot be set up again as they were read (${(r.error?.message ?? r.stderr).trim().split('\n').slice(0, 3).join('; ')})` };
    return { out: r.stdout };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Restores the images of namespace `id` from `dir` into this thread's namespace and reads them back. */
export function restoreIp(dir: string, id: number, what: string): void {
  const r = spawnSync('sh', ['-c', restoreScript(dir, id)], { env: toolEnv(), encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the addresses, routes and rules of ${what}: ${(r.error?.message ?? r.stderr).trim()}`);
  const diff = imagesDiffer(readIpImages(dir, id));
  if (diff) throw new StasisError('E_RESTORE_FAILED', `The addresses, routes and rules of ${what} were restored differently: ${diff}`);
}
