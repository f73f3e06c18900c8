// The netfilter rules of a network namespace, CRIU's way (criu/net.c dump_iptables,
// dump_nftables): the tools' own text, saved by the tools in the namespace and given back to
// them in the new one. The legacy tables (x_tables: iptables-legacy, ip6tables-legacy) go into
// CRIU's raw images iptables-<id>.img and ip6tables-<id>.img, with their counters
// (iptables-legacy-save -c); everything of nf_tables (nft's own tables and those iptables-nft
// made, which nft lists natively) goes into nftables-<id>.img as `nft list ruleset` prints it,
// counters included. A listing the tools cannot load back as it was (an iptables-nft match nft
// only shows as `xt`, a set element that expires) is refused at dump: the texts are loaded into
// a scratch namespace first and listed again, and must come back the same. The restore lists
// the new namespace once more and fails if anything differs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StasisError } from '../errors.js';

const ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };

/** The rules as the tools print them; an empty text where a tool has nothing (or is not installed). */
export interface NetfilterRules {
  ip4: string;
  ip6: string;
  nft: string;
}

const IMAGES = { ip4: 'iptables', ip6: 'ip6tables', nft: 'nftables' } as const;
export const rulesFile = (kind: keyof NetfilterRules, id: number) => `${IMAGES[kind]}-${id}.img`;

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { env: ENV }).status === 0;

// One shell run prints every listing, each after a marker line (in the namespace it runs in).
const LIST = [
  ['ip4', 'iptables-legacy-save -c'],
  ['ip6', 'ip6tables-legacy-save -c'],
  ['nft', 'nft list ruleset'],
] as const;

function listScript(): string {
  return LIST.map(([k, cmd]) => `echo '@@${k}'; if command -v ${cmd.split(' ')[0]} >/dev/null; then ${cmd} || echo '@@failed ${k}'; fi`).join('\n');
}

function parseListing(out: string): NetfilterRules {
  const r: NetfilterRules = { ip4: '', ip6: '', nft: '' };
  let cur: keyof NetfilterRules | undefined;
  for (const line of out.split('\n')) {
    const m = /^@@(ip4|ip6|nft)$/.exec(line);
    if (m) {
      cur = m[1] as keyof NetfilterRules;
      continue;
    }
    const f = /^@@failed (\S+)$/.exec(line);
    if (f) throw new StasisError('E_UNSUPPORTED', `Cannot read the netfilter rules of the network namespace: ${LIST.find(([k]) => k === f[1])?.[1]} failed`);
    if (cur) r[cur] += `${line}\n`;
  }
  // A table list is nothing but its comments when it is empty.
  for (const k of ['ip4', 'ip6', 'nft'] as const) if (!stripComments(r[k]).trim()) r[k] = '';
  return r;
}

/** The rule texts without the tools' comment lines (iptables-save's dates). */
const stripComments = (t: string) => t.split('\n').filter((l) => !l.startsWith('#')).join('\n').trim();

/** The rules of this thread's network namespace (a child spawned now is born in it). */
export function readRules(): NetfilterRules {
  const r = spawnSync('sh', ['-c', listScript()], { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new StasisError('E_UNSUPPORTED', `Cannot read the netfilter rules of the network namespace: ${r.error?.message ?? r.stderr}`);
  return parseListing(r.stdout);
}

/** What of `b` differs from `a` (comment lines aside), or undefined. */
export function rulesDiffer(a: NetfilterRules, b: NetfilterRules): string | undefined {
  for (const [k, cmd] of LIST) {
    const x = stripComments(a[k]).split('\n'), y = stripComments(b[k]).split('\n');
    const i = x.findIndex((l, n) => l !== y[n]);
    if (i >= 0 || x.length !== y.length) {
      const at = i >= 0 ? i : Math.min(x.length, y.length);
      return `${cmd} prints ${JSON.stringify(y[at] ?? '(nothing)')} where it printed ${JSON.stringify(x[at] ?? '(nothing)')}`;
    }
  }
  return undefined;
}

/** The shell commands that load `r` from files in `dir` into the namespace they run in. */
function loadScript(r: NetfilterRules, dir: string): string {
  const lines: string[] = [];
  const put = (k: keyof NetfilterRules, cmd: string) => {
    if (!r[k]) return;
    fs.writeFileSync(path.join(dir, k), r[k]);
    lines.push(`${cmd} < '${path.join(dir, k)}' || { echo '${cmd} failed' >&2; exit 3; }`);
  };
  put('ip4', 'iptables-legacy-restore -w -c');
  put('ip6', 'ip6tables-legacy-restore -w -c');
  put('nft', 'nft -f -');
  return lines.join('\n');
}

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-nf-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Which tool a non-empty rule set needs that this machine lacks, or undefined. */
function missingTool(r: NetfilterRules): string | undefined {
  if ((r.ip4 && !has('iptables-legacy-restore')) || (r.ip6 && !has('ip6tables-legacy-restore'))) return 'iptables-legacy-restore (Debian: apt-get install iptables)';
  if (r.nft && !has('nft')) return 'nft (Debian: apt-get install nftables)';
  return undefined;
}

/**
 * Why rules `r` could not be given back as they are, or undefined: they are loaded into a
 * scratch network namespace (`unshare -n`), listed there, and must list the same.
 */
export function rulesRefusal(r: NetfilterRules): string | undefined {
  if (!r.ip4 && !r.ip6 && !r.nft) return undefined;
  const tool = missingTool(r);
  if (tool) return `its netfilter rules need ${tool} to be restored`;
  return withTmp((dir) => {
    const res = spawnSync('unshare', ['-n', 'sh', '-c', `${loadScript(r, dir)}\n${listScript()}`], { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (res.error || res.status !== 0) return `its netfilter rules cannot be loaded back as the tools print them (${(res.error?.message ?? res.stderr).trim().split('\n').slice(0, 3).join('; ')})`;
    const diff = rulesDiffer(r, parseListing(res.stdout));
    return diff ? `its netfilter rules do not load back the same (${diff})` : undefined;
  });
}

/** Loads `r` into this thread's network namespace and checks that it lists them the same. */
export function loadRules(r: NetfilterRules, what: string): void {
  if (!r.ip4 && !r.ip6 && !r.nft) return;
  const tool = missingTool(r);
  if (tool) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the netfilter rules of ${what}: this machine lacks ${tool}`);
  withTmp((dir) => {
    const res = spawnSync('sh', ['-c', loadScript(r, dir)], { env: ENV, encoding: 'utf8' });
    if (res.error || res.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the netfilter rules of ${what}: ${(res.error?.message ?? res.stderr).trim()}`);
  });
  const diff = rulesDiffer(r, readRules());
  if (diff) throw new StasisError('E_RESTORE_FAILED', `The netfilter rules of ${what} were restored differently: ${diff}`);
}
