// Freezing through a cgroup (--freeze-cgroup, runc's freeze_cgroup): a tree that forks and
// starts threads without pause, in a cgroup of its own, is frozen by freezing the cgroup,
// seizing every thread while none runs, and thawing it. The dump says so in its log, leaves
// the cgroup thawed, and the tree comes back and carries on (its counts go on, its memory is
// intact, its keeper child exits as told); with v2 and with v1's freezer hierarchy. A cgroup
// holding a process outside the tree refuses the dump and leaves both running, untraced, the
// cgroup thawed; so does a cgroup frozen already (a paused container). The test's cgroups are
// its own, removed at the end.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, verifyImages, tmpDir, descendants, assertPassed, waitFor } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import type { Log } from '../../../src/log.js';
import { cgroup2Mount, removeCgroups } from './cgroup2.js';

const cg = cgroup2Mount();
const V2 = typeof cg === 'string' ? '' : cg.mount;
const V1 = '/sys/fs/cgroup/freezer';
const v1Skip = process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync(path.join(V1, 'freezer.state')) && !fs.existsSync(path.join(V1, 'tasks')) ? 'no v1 freezer hierarchy at /sys/fs/cgroup/freezer' : false;
const TOP = `stasis-test-freeze-${process.pid}`;
const made: string[] = [];

function cgroupDir(root: string, name: string): string {
  const d = path.join(root, TOP, name);
  fs.mkdirSync(d, { recursive: true });
  if (!made.includes(path.join(root, TOP))) made.push(path.join(root, TOP));
  return d;
}

const started: Workload[] = [];
after(() => {
  for (const w of started) killTree(w);
  for (const d of made) removeCgroups(d);
});

function killTree(w: Workload): void {
  if (!w.pid || !fs.existsSync(`/proc/${w.pid}`)) return;
  for (const p of [...descendants(w.pid)].reverse()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  w.kill();
}

function churn(dir: string): Workload {
  const w = new Workload('churn', compileWorkload('churn', ['-pthread']), [dir]);
  started.push(w);
  return w.start();
}

function collectingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  return { level: 3, lines, error: (m) => lines.push(m), warn: (m) => lines.push(m), info: (m) => lines.push(m), debug: () => {} };
}

function tracer(pid: number): number {
  return Number(/TracerPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

function thawed(dir: string): boolean {
  if (fs.existsSync(path.join(dir, 'cgroup.freeze'))) return fs.readFileSync(path.join(dir, 'cgroup.freeze'), 'utf8').trim() === '0' && /^frozen 0$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
  return fs.readFileSync(path.join(dir, 'freezer.state'), 'utf8').trim() === 'THAWED';
}

/** Every pid in the cgroup is the workload's: its root, its keeper and their short-lived children. */
function procsIn(dir: string): number[] {
  return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

async function dumpRestoreThrough(dir: string, kind: RegExp): Promise<void> {
  const w = churn(dir);
  const images = tmpDir('churn-img');
  const log = collectingLog();
  await dump({ pid: w.pid, imagesDir: images, freezeCgroup: dir, log });
  assert.ok(log.lines.some((l) => kind.test(l) && /seized its \d+ thread\(s\)/.test(l)), `no freeze of the cgroup in the log:\n${log.lines.join('\n')}`);
  const seized = Number(/seized its (\d+) thread/.exec(log.lines.find((l) => kind.test(l))!)![1]);
  assert.ok(seized >= 3, `only ${seized} thread(s) seized (the root's two, the keeper)`);
  assert.ok(thawed(dir), 'the cgroup was left frozen');
  waitFor('the dumped tree gone', () => procsIn(dir).length === 0);
  verifyImages(images);
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  assert.ok(procsIn(dir).includes(w.pid), 'the restored root is not back in its cgroup');
  w.go();
  const res = w.finish();
  assertPassed(res);
}

test('a tree that forks and starts threads all the time is frozen through its cgroup v2, and comes back carrying on', { skip: typeof cg === 'string' ? cg : false }, async () => {
  await dumpRestoreThrough(cgroupDir(V2, 'a'), /froze cgroup .* \(v2\)/);
});

test('the same through the v1 freezer hierarchy', { skip: v1Skip }, async () => {
  await dumpRestoreThrough(cgroupDir(V1, 'a'), /froze cgroup .* \(v1 freezer\)/);
});

test('--leave-running through the v1 freezer: the tree goes on untraced, the cgroup thawed; then the images restore it', { skip: v1Skip }, async () => {
  const dir = cgroupDir(V1, 'lr');
  const w = churn(dir);
  const images = tmpDir('churn-img');
  await dump({ pid: w.pid, imagesDir: images, freezeCgroup: dir, leaveRunning: true });
  assert.ok(thawed(dir));
  for (const p of [w.pid, ...descendants(w.pid)]) {
    try {
      assert.equal(tracer(p), 0, `pid ${p} is still traced`);
    } catch (e) {
      if (fs.existsSync(`/proc/${p}`)) throw e; // a short-lived child may be gone
    }
  }
  w.go();
  assertPassed(w.finish());
  waitFor('the tree gone', () => procsIn(dir).length === 0);
  fs.rmSync(w.file('result'));
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  assertPassed(w.finish());
});

test('a freeze cgroup holding a process outside the tree refuses the dump; both trees go on, untraced, the cgroup thawed', { skip: typeof cg === 'string' ? cg : false }, async () => {
  const dir = cgroupDir(V2, 'two');
  const w = churn(dir);
  const other = churn(dir);
  const images = tmpDir('churn-img');
  await assert.rejects(dump({ pid: w.pid, imagesDir: images, freezeCgroup: dir }), (e: unknown) => {
    assert.ok(e instanceof StasisError, String(e));
    assert.equal(e.code, 'E_UNSUPPORTED', e.message);
    assert.match(e.message, new RegExp(`holds pid\\(s\\) .*\\b${other.pid}\\b.*not in the tree`));
    return true;
  });
  assert.ok(thawed(dir), 'the cgroup was left frozen');
  for (const p of [w.pid, other.pid]) assert.equal(tracer(p), 0, `pid ${p} is still traced`);
  assert.deepEqual(fs.readdirSync(images), [], 'the failed dump left images behind');
  w.go();
  other.go();
  assertPassed(w.finish());
  assertPassed(other.finish());
});

test('a freeze cgroup frozen already (a paused container) is refused, and left frozen as it was', { skip: typeof cg === 'string' ? cg : false }, async () => {
  const dir = cgroupDir(V2, 'paused');
  const w = churn(dir);
  fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '1');
  try {
    waitFor('the cgroup frozen', () => /^frozen 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8')));
    await assert.rejects(dump({ pid: w.pid, imagesDir: tmpDir('churn-img'), freezeCgroup: dir }), (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && /frozen/.test(e.message));
    assert.equal(fs.readFileSync(path.join(dir, 'cgroup.freeze'), 'utf8').trim(), '1');
    assert.equal(tracer(w.pid), 0);
  } finally {
    fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '0');
  }
  w.go();
  assertPassed(w.finish());
});
