// Process trees: pids, parents, groups, sessions and zombies come back; the tree works on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';

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
