// Tests that make namespaces, set their sysctls and restore them run in a mount namespace
// of their own in which /proc/sys is writable: the test file runs itself again under
// `unshare -m --propagation private` after taking off the read-only /proc/sys bind mounts a
// container host may have (CONTAINER-NOTES.md). The machine's mounts are left alone, and the
// namespaces die with that process.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { descendants, waitFor } from '../harness.js';
import { waitPid } from '../../../src/sys/index.js';

/** Why the tests cannot run here, or false. */
export function namespacesUnavailable(): string | false {
  const u = spawnSync('unshare', ['-m', '-p', '-u', '-i', '-n', '--fork', 'true']);
  if (u.status !== 0) return `cannot make namespaces (unshare: ${u.stderr?.toString().trim() || u.error?.message})`;
  return false;
}

/** True in the copy running in the private mount namespace. */
export function inPrivateProc(flag: string): boolean {
  return process.env[flag] === '1';
}

/** Runs the test file `url` again in a private mount namespace with /proc/sys writable; it must print `done`. */
export function runInPrivateProc(url: string, flag: string, done: RegExp): void {
  const script = 'while grep -q " /proc/sys " /proc/self/mountinfo; do umount -l /proc/sys || exit 1; done; exec "$@"';
  // Its own TAP report (not the stream of the runner this file runs under).
  const env: NodeJS.ProcessEnv = { ...process.env, [flag]: '1' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'x', process.execPath, '--test-reporter=tap', fileURLToPath(url)], {
    env, encoding: 'utf8', timeout: 300_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, done);
}

/** The pid `unshare --fork` started (its one child), once it exists. */
export function childOf(pid: number): number | undefined {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    return kids[0];
  } catch {
    return undefined;
  }
}

/** SIGKILL to `pid` and all its descendants: a test leaves nothing of its namespaces behind. */
export function killTree(pid: number): void {
  for (const p of [pid, ...descendants(pid)]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** The restored tree at `pid` exits by itself, with status 0, within 30 s. */
export function assertExitsZero(pid: number): void {
  const st = waitFor('the restored tree', () => waitPid(pid, true), 30000);
  assert.equal(st.kind === 'exited' && st.code, 0);
}

/** Kills the tree at `pid` (none where undefined) and reaps its root if that is still to do. */
export function endTree(pid: number | undefined): void {
  if (pid === undefined) return;
  killTree(pid);
  try {
    waitPid(pid);
  } catch {
    /* reaped */
  }
}
