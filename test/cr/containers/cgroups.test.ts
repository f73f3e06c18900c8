// Cgroup membership (cgroup.img): a tree whose root and one child are in one cgroup v2
// cgroup and another child (with its own child) in a second comes back in those cgroups,
// each task's /proc/PID/cgroup as it was, the cgroups made again with their properties and
// permissions when they are gone (--manage-cgroups soft, the default), their properties
// set again on existing ones with full; none refuses to make them, leaving nothing behind;
// ignore leaves the tasks in stasis's cgroups; a tree in a frozen cgroup is refused. Every
// cgroup is made under a directory of the test's own in the machine's cgroup2 hierarchy,
// removed at the end.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, verifyImages, tmpDir, descendants, assertPassed, assertDumpRefused, waitFor } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import type { RestoreOptions } from '../../../src/api/index.js';
import { cgroup2Mount, removeCgroups } from './cgroup2.js';

const cg = cgroup2Mount();
const skip = typeof cg === 'string' ? cg : false;
const MOUNT = typeof cg === 'string' ? '' : cg.mount;
const TOP = `stasis-test-cgroups-${process.pid}`;
const A = `/${TOP}/a`, B = `/${TOP}/b/deep`;
const dirOf = (p: string) => path.join(MOUNT, p);

function v2Path(pid: number): string | undefined {
  return /^0::(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
}

/** Removes the test's cgroups (each must be empty: the tasks are gone). */
function removeAll(): void {
  if (MOUNT) removeCgroups(dirOf(`/${TOP}`));
}

after(removeAll);

/** The workload in A (root, one child) and B (a child and its child), with properties set on both. */
function start(): Workload {
  removeAll();
  fs.mkdirSync(dirOf(A), { recursive: true });
  fs.mkdirSync(dirOf(B), { recursive: true });
  fs.writeFileSync(path.join(dirOf(A), 'cgroup.max.descendants'), '5');
  fs.writeFileSync(path.join(dirOf(B), 'cgroup.max.depth'), '3');
  fs.chmodSync(dirOf(B), 0o750);
  fs.chownSync(path.join(dirOf(B), 'cgroup.procs'), 4321, 4322);
  return new Workload('cgtree', compileWorkload('cgtree'), [dirOf(A), dirOf(B), A, B]).start();
}

const finished = new WeakSet<Workload>();
/** Lets the workload check itself and waits for its end (its result, its exit). */
function finish(w: Workload): ReturnType<Workload['finish']> {
  const r = w.finish();
  finished.add(w);
  return r;
}

/** Kills the tree under `root` (children first, so none lives on reparented), and waits until all are gone. */
function killAll(w: Workload): void {
  if (finished.has(w)) return; // reaped: its pid may be someone else's now
  const all = cgroupsOf(w.pid).reverse();
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  w.kill();
  // Gone or a zombie (a task can go between the two looks: no stat then is gone too).
  const goneOrZombie = (p: number) => /\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'));
  waitFor('the tree gone', () => all.every((p) => {
    try {
      return goneOrZombie(p);
    } catch {
      return true;
    }
  }));
}

/** The tree's tasks, root first. */
function cgroupsOf(root: number): number[] {
  return [root, ...descendants(root)];
}

async function dumpTree(w: Workload): Promise<{ images: string; expected: Map<number, string> }> {
  const expected = new Map(cgroupsOf(w.pid).map((p) => [p, v2Path(p)!]));
  assert.equal(expected.size, 4, `the tree: ${[...expected.keys()].join(' ')}`);
  assert.deepEqual([...expected.values()].sort(), [A, A, B, B]);
  const images = tmpDir('cgtree-img');
  await dump({ pid: w.pid, imagesDir: images });
  // Their pids free again before they are restored (a zombie's parent may reap it late).
  waitFor('the dumped tree gone', () => [...expected.keys()].every((p) => !fs.existsSync(`/proc/${p}`)));
  verifyImages(images);
  assert.ok(fs.existsSync(path.join(images, 'cgroup.img')), 'no cgroup.img');
  return { images, expected };
}

async function restoreTree(w: Workload, images: string, opts: Partial<RestoreOptions> = {}): Promise<Map<number, string>> {
  const r = await restore({ ...opts, imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  return new Map(cgroupsOf(r.pid).map((p) => [p, v2Path(p)!]));
}

test('a tree in two cgroups comes back in them, the cgroups made again with their properties', { skip }, async () => {
  const w = start();
  try {
    const { images, expected } = await dumpTree(w);
    removeAll(); // the tasks are gone: the cgroups are empty
    const got = await restoreTree(w, images);
    assert.deepEqual(got, expected);
    assert.equal(fs.readFileSync(path.join(dirOf(A), 'cgroup.max.descendants'), 'utf8').trim(), '5');
    assert.equal(fs.readFileSync(path.join(dirOf(B), 'cgroup.max.depth'), 'utf8').trim(), '3');
    assert.equal(fs.statSync(dirOf(B)).mode & 0o7777, 0o750);
    const procs = fs.statSync(path.join(dirOf(B), 'cgroup.procs'));
    assert.deepEqual([procs.uid, procs.gid], [4321, 4322]);
    // They carry on there: each checks its cgroup, and that a child it forks is born in it.
    w.go();
    assertPassed(finish(w));
  } finally {
    killAll(w);
  }
});

test('soft leaves an existing cgroup\'s properties alone, full sets them again', { skip }, async () => {
  for (const mode of ['soft', 'full'] as const) {
    const w = start();
    try {
      const { images, expected } = await dumpTree(w);
      fs.writeFileSync(path.join(dirOf(B), 'cgroup.max.depth'), '7');
      const got = await restoreTree(w, images, { manageCgroups: mode });
      assert.deepEqual(got, expected);
      assert.equal(fs.readFileSync(path.join(dirOf(B), 'cgroup.max.depth'), 'utf8').trim(), mode === 'soft' ? '7' : '3', `--manage-cgroups=${mode}`);
      w.go();
      assertPassed(finish(w));
    } finally {
      killAll(w);
    }
  }
});

test('none refuses to make a missing cgroup: nothing is restored, nothing made', { skip }, async () => {
  const w = start();
  try {
    const { images } = await dumpTree(w);
    fs.rmdirSync(dirOf(B));
    await assert.rejects(restore({ imagesDir: images, detach: true, manageCgroups: 'none' }), (e: unknown) => {
      assert.ok(e instanceof StasisError, String(e));
      assert.equal(e.code, 'E_RESTORE_FAILED');
      assert.match(e.message, /deep.*does not exist.*none/);
      return true;
    });
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the failed restore left its root');
    assert.equal(fs.existsSync(dirOf(B)), false);
    // strict refuses cgroups that exist; the ones it made before it stopped are removed.
    fs.rmdirSync(dirOf(`/${TOP}/b`));
    await assert.rejects(restore({ imagesDir: images, detach: true, manageCgroups: 'strict' }), /exists already.*strict/);
    assert.equal(fs.existsSync(dirOf(`/${TOP}/b`)), false, 'strict left a cgroup it made');
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false);
  } finally {
    killAll(w);
  }
});

test('ignore leaves the restored tasks in stasis\'s cgroups', { skip }, async () => {
  const w = start();
  try {
    const { images } = await dumpTree(w);
    const mine = v2Path(process.pid)!;
    const got = await restoreTree(w, images, { manageCgroups: 'ignore' });
    assert.deepEqual([...got.values()], [mine, mine, mine, mine]);
  } finally {
    killAll(w);
  }
});

test('--cgroup-root puts each top cgroup of the image at the new root, its tasks following (CRIU\'s rule)', { skip }, async () => {
  const w = start();
  try {
    const { images } = await dumpTree(w);
    removeAll();
    const moved = await restoreTree(w, images, { cgroupRoots: [{ path: `/${TOP}/moved` }] });
    assert.deepEqual([...moved.values()], [`/${TOP}/moved`, `/${TOP}/moved`, `/${TOP}/moved`, `/${TOP}/moved`]);
    // Made for the first top cgroup (A), with its properties; B's found it made (soft: left alone).
    assert.equal(fs.readFileSync(path.join(dirOf(`/${TOP}/moved`), 'cgroup.max.descendants'), 'utf8').trim(), '5');
  } finally {
    killAll(w);
  }
});

test('a tree in a frozen cgroup is refused before it is touched, and carries on once thawed', { skip }, async () => {
  const w = start();
  try {
    fs.writeFileSync(path.join(dirOf(B), 'cgroup.freeze'), '1');
    waitFor('B frozen', () => /^frozen 1$/m.test(fs.readFileSync(path.join(dirOf(B), 'cgroup.events'), 'utf8')));
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/cgroup \/stasis-test-cgroups-\d+\/b\/deep \(v2\) is frozen/], cgroupsOf(w.pid));
    fs.writeFileSync(path.join(dirOf(B), 'cgroup.freeze'), '0');
    w.go();
    assertPassed(finish(w));
  } finally {
    killAll(w);
  }
});

test('--cgroup-root at dump takes a hierarchy from that cgroup down, empty cgroups too (CRIU\'s cgroup02)', { skip }, async () => {
  const w = start();
  try {
    fs.mkdirSync(dirOf(`/${TOP}/empty/inner`), { recursive: true });
    const images = tmpDir('cgtree-img');
    // Of the v2 hierarchy only (its controller is named '', as in /proc/PID/cgroup): the others have no such cgroup.
    await dump({ pid: w.pid, imagesDir: images, cgroupRoots: [{ controller: '', path: `/${TOP}` }] });
    waitFor('the dumped tree gone', () => !fs.existsSync(`/proc/${w.pid}`));
    verifyImages(images);
    removeAll();
    const got = await restoreTree(w, images);
    assert.deepEqual([...got.values()].sort(), [A, A, B, B]);
    assert.ok(fs.existsSync(dirOf(`/${TOP}/empty/inner`)), 'the empty cgroups were not made again');
  } finally {
    killAll(w);
  }
});
