// What the runc and podman tests (and bench/runc.ts) share: a busybox bundle, stasis wrapped
// as the `criu` runc runs, a counting container, and a shell that runs runc as
// CONTAINER-NOTES.md says: in a private mount namespace with /proc/sys writable and a devpts
// of its own on /dev/pts, so that nothing of it is left on the machine.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

export const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const has = (p: string) => spawnSync('sh', ['-c', `command -v ${p}`], { env: { ...process.env, PATH: SBIN_PATH } }).status === 0;

/** Why runc cannot be driven here (a missing program), or false. */
export function runcUnavailable(extra: string[] = []): string | false {
  for (const p of ['runc', 'busybox', 'unshare', ...extra]) if (!has(p)) return `${p} is not installed (apt-get install runc busybox-static${extra.length ? ` ${extra.join(' ')}` : ''})`;
  return false;
}

/**
 * The container's program: counts into /count (a file of the bundle's rootfs, so the host
 * reads it) and prints `outN` on its stdout, a pipe runc's restore hands back (inherit_fd).
 */
export const COUNTER = ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i >> /count; echo out$i; sleep 0.05; done'];

/** A rootfs with busybox and the links the container uses. */
export function makeRootfs(dir: string): string {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(root, d), { recursive: true });
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const l of ['sh', 'sleep', 'cat', 'echo', 'seq']) fs.symlinkSync('busybox', path.join(root, 'bin', l));
  return root;
}

/** A bundle in `dir`: the rootfs, `runc spec` with stdio off a terminal and a writable root. */
export function makeBundle(dir: string, args: string[]): string {
  const b = path.join(dir, 'bundle');
  fs.mkdirSync(b, { recursive: true });
  makeRootfs(b);
  const r = spawnSync('runc', ['spec'], { cwd: b, env: { ...process.env, PATH: SBIN_PATH } });
  if (r.status !== 0) throw new Error(`runc spec failed: ${String(r.stderr)}`);
  const c = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')) as { process: { terminal: boolean; args: string[] }; root: { readonly: boolean } };
  c.process.terminal = false;
  c.process.args = args;
  c.root.readonly = false;
  fs.writeFileSync(path.join(b, 'config.json'), JSON.stringify(c));
  return b;
}

/**
 * A `criu` that is stasis, as runc's --criu and podman's PATH want it: a symbolic link to
 * `repo`'s bin/stasis.js, as a user makes one (its launcher finds node on PATH).
 */
export function stasisAsCriu(dir: string, repo: string): string {
  const bin = path.join(dir, 'criu-bin');
  fs.mkdirSync(bin, { recursive: true });
  const link = path.join(bin, 'criu');
  fs.symlinkSync(path.join(repo, 'bin/stasis.js'), link);
  return link;
}

/** Runs the shell `script` in a private mount namespace set up for runc; its status and output. */
export function inRuncNs(script: string, timeoutMs = 100_000, env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const prologue = `set -u
while grep -q " /proc/sys " /proc/self/mountinfo; do umount -l /proc/sys || exit 1; done
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', prologue + script], {
    env: { ...process.env, PATH: SBIN_PATH, ...env }, encoding: 'utf8', timeout: timeoutMs,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The shell that waits until `file` has at least `n` lines (fails the script after 10 s). */
export const waitLines = (file: string, n: number | string) =>
  `w=0; while [ "$(cat ${file} 2>/dev/null | wc -l)" -lt ${n} ]; do w=$((w+1)); [ $w -gt 200 ] && { echo "no count in ${file}"; exit 1; }; sleep 0.05; done`;

/**
 * Where the numbers in `lines` (each `prefix` and a number) skip or repeat, from the first:
 * empty when they count 1, 2, 3... without a gap.
 */
export function gapsIn(lines: string[], prefix = ''): string[] {
  const bad: string[] = [];
  let want = 1;
  for (const l of lines) {
    if (l === '') continue;
    const n = Number(l.slice(prefix.length));
    if (!l.startsWith(prefix) || n !== want) bad.push(`line ${want}: ${JSON.stringify(l)}`);
    want = (Number.isFinite(n) ? n : want) + 1;
  }
  return bad;
}
