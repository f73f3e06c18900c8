// The busybox box the mount-namespace tests run their trees in: a root of its own under the
// test's directory with busybox in /bin, entered by `unshare -m -p --fork --propagation private
// sh -c SCRIPT` (the script binds the root over itself, mounts what the test wants and
// pivot_roots into it), stdin and stdout on /dev/null, stderr into the directory's stderr.log.
// And the checks those tests share: a refusal, a count that goes on, and the tear-down.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { sleepMs, waitFor } from '../harness.js';
import { StasisError } from '../../../src/api/index.js';
import { spawnTask } from '../../../src/sys/index.js';
import { childOf, endTree, namespacesUnavailable } from './private-proc.js';

/** Where the link at `p` points, or undefined where there is none (a task gone, an fd closed). */
export const readlinkOr = (p: string): string | undefined => {
  try {
    return fs.readlinkSync(p);
  } catch {
    return undefined;
  }
};
/** A task's comm (with its newline), or '' once it is gone. */
export const commOf = (pid: number): string => {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8');
  } catch {
    return '';
  }
};

/** The host's busybox, or '' where there is none. */
export const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();

/** Why a box cannot run here, or false. */
export function boxUnavailable(): string | false {
  return namespacesUnavailable() || (!busybox && 'busybox is not installed (apt-get install busybox-static)');
}

/** A box started: its directory, its root, the unshare spawnBox started (the tree's parent, or an outer one's), the tree's root process. */
export interface Box {
  dir: string;
  root: string;
  unshare: number;
  pid: number;
}

/** `dir`/root with the directories `dirs`, busybox as /bin/busybox and the commands `links` linked to it in /bin. */
export function makeBoxRoot(dir: string, dirs: readonly string[], links: readonly string[] = []): string {
  const root = path.join(dir, 'root');
  for (const d of dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const l of links) fs.symlinkSync('busybox', path.join(root, 'bin', l));
  return root;
}

/**
 * Starts the box (`unshare NS --propagation private sh -c script`, NS `-m -p --fork` unless
 * given) and waits until `ready(top)`, top being the unshare, gives what the test waits for
 * (`what`). A box that does not get there is ended and `dir` removed, its stderr in the error:
 * spawnTask's processes are not the harness's to kill at exit.
 */
export function spawnBox<T>(dir: string, script: string, what: string, ready: (top: number) => T | undefined | false, ns: readonly string[] = ['-m', '-p', '--fork']): { top: number; ready: T } {
  const stderr = path.join(dir, 'stderr.log');
  const top = spawnTask(['unshare', ...ns, '--propagation', 'private', 'sh', '-c', script], {
    stdin: { path: '/dev/null' }, stdout: { path: '/dev/null' }, stderr: { path: stderr },
  });
  try {
    return { top, ready: waitFor(what, () => ready(top)) };
  } catch (err) {
    endTree(top);
    const log = fs.existsSync(stderr) ? fs.readFileSync(stderr, 'utf8').trim() : '';
    fs.rmSync(dir, { recursive: true, force: true });
    if (err instanceof Error && log) err.message += ` (the box's stderr: ${log})`;
    throw err;
  }
}

/** A `ready` for spawnBox: unshare's one child, once `ok` holds of it. */
export const childWhen = (ok: (pid: number) => boolean) => (top: number): number | undefined => {
  const c = childOf(top);
  return c !== undefined && ok(c) ? c : undefined;
};

/** The numbers the box at `pid` wrote into `file` (a path in its root), one a line; none while there is no file. */
export function countOf(pid: number, file: string): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/root${file}`, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The count goes on from where it was (`from` lines): past 10 more, 1..N, no gap, no repeat. */
export function assertCountGoesOn(count: () => number[], from: number): void {
  waitFor('the count to go on', () => count().length > from + 10);
  const n = count();
  assert.deepEqual(n, n.map((_, i) => i + 1), `count: ${n.join(' ')}`);
}

/** After a refused dump the tree runs on: its count grows within 200 ms. */
export function assertCountsOn(count: () => number[]): void {
  const n = count().length;
  sleepMs(200);
  assert.ok(count().length > n, 'the tree stopped counting after a refused dump');
}

/** For assert.rejects: the dump's refusal, E_UNSUPPORTED with a message that `re` matches. */
export const refused = (re: RegExp) => (e: unknown): boolean => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && re.test(e.message);

const yards = (): string[] => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('stasis-mnt-'));
/** The restore yards already in the temporary directory when this file's tests began (a stasis killed mid-restore elsewhere leaves its own). */
const yardsBefore = new Set(yards());

/** That no restore of this file's tests left its yard (stasis-mnt-*, where a mount namespace's tree is assembled) in the temporary directory. */
export function assertNoYardLeft(): void {
  assert.deepEqual(yards().filter((f) => !yardsBefore.has(f)), []);
}

/** Ends the restored tree (if any) and the box (`top`), and removes the images and the box's directory. */
export function cleanUp(top: number, dir: string, images: string, restored?: number): void {
  endTree(restored);
  endTree(top);
  fs.rmSync(images, { recursive: true, force: true });
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * The script that makes `root` the box's root (with its /dev/null and /proc) and runs a
 * /bin/init there, written by this, which runs /bin/child in a mount namespace of its own
 * (`unshare -m`, with `unshare` its further options) and sleeps. `setup` runs in the box's
 * namespace before the pivot_root (its paths under `root`). With `setsid` the init leads a
 * session of its own (CRIU refuses to dump a tree whose session leader is outside its pid namespace).
 */
export function nestedBox(root: string, opts: { setup?: string; unshare?: string; setsid?: boolean } = {}): string {
  fs.writeFileSync(path.join(root, 'bin/init'), `umount -l /old\nexec </dev/null >/dev/null 2>&1\nunshare -m ${opts.unshare ? `${opts.unshare} ` : ''}/bin/sh /bin/child &\nexec sleep 1000\n`, { mode: 0o755 });
  return `
    set -e
    mknod ${root}/dev/null c 1 3
    mount --bind ${root} ${root}
    mount -t proc -o nosuid proc ${root}/proc
    ${opts.setup ?? ''}
    cd ${root} && pivot_root . old
    exec ${opts.setsid ? '/bin/busybox setsid ' : ''}/bin/sh /bin/init
  `;
}
