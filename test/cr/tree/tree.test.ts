// Process trees: pids, parents, groups, sessions and zombies come back; the tree works on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, waitFor, descendants } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { spawnTask, waitPid } from '../../../src/sys/index.js';
import { namespacesUnavailable, childOf, killTree, assertExitsZero, endTree } from '../ns/private-proc.js';

function ids(pid: number): string {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return `${pid}${f[0] === 'Z' ? ' zombie' : ''} ppid=${f[1]} pgid=${f[2]} sid=${f[3]}`;
}

test('a three-level tree with two groups, its own session and a zombie with credentials of its own comes back whole', async () => {
  const w = new Workload('tree', compileWorkload('tree'), ['creds']).start();
  const [zombie, a, b] = fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number) as [number, number, number];
  const grandchild = Number(fs.readFileSync(`/proc/${a}/task/${a}/children`, 'utf8').trim());
  const all = [w.pid, zombie, a, b, grandchild];
  const before = all.map(ids);
  assert.match(before[1]!, /zombie/);
  const { d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [...all].sort());
  assert.deepEqual(all.map(ids), before);
  w.go();
  assertPassed(w.finish());
  // Each task reported its pid, parent, group and session after the restore.
  const report = (n: number) => fs.readFileSync(w.file(`report-${n}`), 'utf8').trim().split(' ').slice(0, 4).map(Number);
  assert.deepEqual(report(1), [a, w.pid, w.pid, w.pid]);
  assert.deepEqual(report(2), [b, w.pid, b, w.pid]);
  assert.deepEqual(report(3), [grandchild, a, w.pid, w.pid]);
});

test('groups and sessions whose leaders have exited come back, and the helpers leave no trace', async () => {
  const w = new Workload('orphans', compileWorkload('orphans')).start();
  const [a, b, s] = fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number) as [number, number, number];
  const t = Number(fs.readFileSync(w.file('t-pid'), 'utf8'));
  const before = [w.pid, b, t].map(ids);
  assert.match(before[1]!, new RegExp(`pgid=${a} `));
  assert.match(before[2]!, new RegExp(`ppid=${w.pid} pgid=${s} sid=${s}$`));
  const { d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [w.pid, b, t].sort());
  assert.deepEqual([w.pid, b, t].map(ids), before);
  for (const gone of [a, s]) assert.equal(fs.existsSync(`/proc/${gone}`), false, `helper ${gone} is still there`);
  w.go();
  assertPassed(w.finish());
  const report = (n: string) => fs.readFileSync(w.file(`report-${n}`), 'utf8').trim().split(' ').map(Number);
  assert.deepEqual(report('b'), [b, w.pid, a, w.pid]);
  assert.deepEqual(report('t'), [t, w.pid, s, s]);
});

test('a task left in the session its parent quit, and an orphan in the session of a sibling that leads it, come back in their sessions', async () => {
  const w = new Workload('sessions', compileWorkload('sessions')).start();
  const [a, l] = fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number) as [number, number];
  const pidOf = (n: string) => Number(fs.readFileSync(w.file(`pre-${n}`), 'utf8').split(' ')[0]);
  const g = pidOf('g'), x = pidOf('x');
  const all = [w.pid, a, g, l, x];
  const before = all.map(ids);
  // g: under a, which leads another session, in the parent's; x: under the parent, in l's.
  assert.equal(before[1], `${a} ppid=${w.pid} pgid=${a} sid=${a}`);
  assert.equal(before[2], `${g} ppid=${a} pgid=${w.pid} sid=${w.pid}`);
  assert.equal(before[4], `${x} ppid=${w.pid} pgid=${l} sid=${l}`);
  const { d } = await checkpointRestore(w);
  assert.deepEqual([...d.pids].sort(), [...all].sort());
  assert.deepEqual(all.map(ids), before);
  w.go();
  assertPassed(w.finish());
  // Each reported its pid, parent, group and session after the restore, as /proc showed them before.
  for (const [n, pid] of [['a', a], ['g', g], ['l', l], ['x', x]] as const) {
    const [p, pp, pg, s] = fs.readFileSync(w.file(`post-${n}`), 'utf8').trim().split(' ');
    assert.equal(`${p} ppid=${pp} pgid=${pg} sid=${s}`, before[all.indexOf(pid)], n);
  }
});

/** Every task under `root` (a host pid) as its pid namespace sees it: "pid ppid pgid sid zombie|live", by pid. */
function innerIds(root: number): Map<number, string> {
  const field = (st: string, k: string) => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(st)?.[1]?.split('\t').at(-1) ?? '?';
  const all = [root, ...descendants(root)].map((p) => ({ host: p, st: fs.readFileSync(`/proc/${p}/status`, 'utf8') }));
  const inner = new Map(all.map(({ host, st }) => [host, Number(field(st, 'NSpid'))]));
  return new Map(all.map(({ host, st }) => {
    const pid = inner.get(host)!;
    const ppid = host === root ? 0 : inner.get(Number(field(st, 'PPid')));
    return [pid, `${pid} ppid=${ppid} pgid=${field(st, 'NSpgid')} sid=${field(st, 'NSsid')} ${field(st, 'State').startsWith('Z') ? 'zombie' : 'live'}`];
  }));
}

test('in a pid namespace of the tree\'s own, orphans of its init in sessions of a zombie, of a live non-sibling and of a sibling (in a group whose leader is gone), and a task born in the init\'s session through two leaders, come back with their ids', { skip: namespacesUnavailable() }, async () => {
  const dir = tmpDir('pidns-sessions');
  const unshare = spawnTask(['unshare', '--pid', '--fork', compileWorkload('pidns-sessions'), dir], {
    cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` },
  });
  let root = 0;
  try {
    waitFor('pidns-sessions ready', () => fs.existsSync(`${dir}/ready`) || waitPid(unshare, true));
    assert.ok(fs.existsSync(`${dir}/ready`), fs.readFileSync(`${dir}/stderr.log`, 'utf8'));
    const pre = (n: string) => fs.readFileSync(`${dir}/pre-${n}`, 'utf8').trim().split(' ').map(Number) as [number, number, number, number];
    const [m, k, s, b] = ['m', 'k', 's', 'b'].map((n) => pre(n)[0]);
    // The states the test is about, as the tasks see them.
    const [x, xp, xg, xs] = pre('x');
    assert.deepEqual([xp, xg, xs].map((v, i) => (i ? v === xs && xs !== 1 && xs !== m : v === 1)), [true, true, true], `x: ${pre('x')}`);
    assert.deepEqual(pre('y').slice(1), [1, k, k]);
    const [, vp, vg, vs] = pre('v');
    assert.deepEqual([vp, vs], [1, s]);
    assert.ok(vg !== s && vg !== pre('v')[0], `v's group ${vg} is its session's or its own`);
    assert.deepEqual(pre('c').slice(1), [b, 1, 1]);
    const before = innerIds(childOf(unshare)!);
    assert.match(before.get(xs)!, / zombie$/, 'x\'s session leader is not a zombie');
    assert.equal(before.has(vg), false, 'v\'s group leader is still there');
    assert.equal(before.get(x), `${x} ppid=1 pgid=${xs} sid=${xs} live`);
    const images = tmpDir('pidns-sessions-img');
    await dump({ pid: childOf(unshare)!, imagesDir: images });
    waitPid(unshare); // its child was killed: it ends too
    const r = await restore({ imagesDir: images, detach: true });
    root = r.pid;
    // The same tasks (no helper left), each with its parent, group and session; the zombie still one.
    assert.deepEqual(innerIds(root), before);
    fs.writeFileSync(`${dir}/go`, '');
    for (const n of ['init', 'm', 'x', 'k', 'y', 's', 'v', 'a', 'b', 'c']) {
      waitFor(`post-${n}`, () => fs.existsSync(`${dir}/post-${n}`));
      assert.equal(fs.readFileSync(`${dir}/post-${n}`, 'utf8'), fs.readFileSync(`${dir}/pre-${n}`, 'utf8'), n);
    }
    fs.writeFileSync(`${dir}/go2`, '');
    assertExitsZero(root);
    assert.match(fs.readFileSync(`${dir}/result`, 'utf8'), /^PASS/);
    root = 0;
  } finally {
    if (root) endTree(root);
    killTree(unshare);
    try {
      waitPid(unshare);
    } catch {
      /* reaped */
    }
  }
});
