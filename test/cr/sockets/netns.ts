// Tests whose network lock adds netfilter rules run in a network namespace of their own: the
// test file runs itself again under `unshare -n` (with `flag` set in its environment), brings
// lo up there, and does its work; the namespace, and any rule in it, dies with that process.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The environment with the sbin directories, where iptables, nft and ip live. */
export const SBIN_ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };

/** Why the test cannot run here (no namespaces, or a missing program), or false. */
export function netnsUnavailable(programs: string[]): string | false {
  const u = spawnSync('unshare', ['-n', 'true']);
  if (u.status !== 0) return `cannot make a network namespace (unshare -n: ${u.stderr?.toString().trim() || u.error?.message})`;
  for (const p of ['ip', ...programs]) {
    if (spawnSync('sh', ['-c', `command -v ${p}`], { env: SBIN_ENV }).status !== 0) return `${p} is not installed`;
  }
  return false;
}

/** True in the copy running in the namespace (lo is brought up then). */
export function inOwnNetns(flag: string): boolean {
  if (process.env[flag] !== '1') return false;
  execFileSync('ip', ['link', 'set', 'lo', 'up'], { env: SBIN_ENV });
  return true;
}

/** Runs the test file `url` again in a network namespace of its own; it must print `done`. */
export function runInOwnNetns(url: string, flag: string, done: RegExp): void {
  const r = spawnSync('unshare', ['-n', '--', process.execPath, fileURLToPath(url)], {
    env: { ...process.env, [flag]: '1' }, encoding: 'utf8', timeout: 180_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, done);
}

/** What the network lock holds now: iptables rules with its mark, or 1 if nftables has `table`. */
export function lockedRules(method: 'iptables' | 'nftables', table: string): number {
  if (method === 'nftables') return spawnSync('nft', ['list', 'table', 'inet', table], { env: SBIN_ENV }).status === 0 ? 1 : 0;
  const rules = ['iptables-save', 'ip6tables-save'].map((p) => execFileSync(p, { env: SBIN_ENV, encoding: 'utf8' })).join('');
  return rules.split('\n').filter((l) => l.startsWith('-A') && /0xc114/i.test(l)).length;
}
