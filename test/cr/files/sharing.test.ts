// Shared open files: fds that shared one open file (dup, fork) share it again after restore,
// in every task; fds that opened the same path separately keep separate ones. Proved twice:
// by kcmp (which fds are one object) and by the workload reading and seeking through each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { kcmpFile, kcmpTasks } from '../../../src/sys/index.js';
import { readImage } from '../../../src/image/index.js';

interface Fd { pid: number; fd: number }

function fdsOf(pid: number): Fd[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map(Number).filter((fd) => fd >= 3).sort((a, b) => a - b).map((fd) => ({ pid, fd }));
}

/** Which fds are one open file: each fd's class is the first fd kcmp finds equal to it. */
function sharing(fds: Fd[]): string[] {
  return fds.map((f) => {
    const same = fds.find((g) => kcmpFile(f.pid, g.pid, f.fd, g.fd) === 0)!;
    return `${f.pid}:${f.fd}=${same.pid}:${same.fd}`;
  });
}

const pos = (f: Fd) => /pos:\s+(\d+)/.exec(fs.readFileSync(`/proc/${f.pid}/fdinfo/${f.fd}`, 'utf8'))?.[1];

test('fds shared through dup and fork share one open file again after restore, in parent and child; separate opens stay separate', async () => {
  const w = new Workload('files-share', compileWorkload('files-share')).start();
  const child = Number(fs.readFileSync(w.file('child'), 'utf8'));
  const fds = [...fdsOf(w.pid), ...fdsOf(child)];
  const before = sharing(fds);
  const posBefore = fds.map(pos);
  // The workload's own layout: 10 and 11 one object in both tasks, 12 another, 13 the child's own.
  const one = (p1: number, f1: number, p2: number, f2: number) => kcmpFile(p1, p2, f1, f2) === 0;
  assert.ok(one(child, 11, w.pid, 10) && one(child, 12, w.pid, 12) && !one(w.pid, 10, w.pid, 12), before.join(' '));
  assert.ok(!one(child, 13, child, 12) && !one(child, 13, child, 10), before.join(' '));

  const { images, d } = await checkpointRestore(w);
  // One object per open file in files.img; every fd names one.
  const files = readImage(images, 'files', undefined).filter((f) => f.reg?.name === `${w.dir}/data.bin`);
  assert.equal(files.length, 3, 'data.bin is three open files: 10/11 (and 3), 12 (and 4), the child\'s 13');
  assert.ok(d.kcmpCalls > 0);

  assert.deepEqual(fds.map((f) => fs.existsSync(`/proc/${f.pid}/fd/${f.fd}`)), fds.map(() => true));
  assert.deepEqual(sharing(fds), before);
  assert.deepEqual(fds.map(pos), posBefore);
  w.go();
  assertPassed(w.finish());
});

test('processes sharing one fd table (CLONE_FILES) share it again after restore: an fd one opens shows in the other', async () => {
  const w = new Workload('fdtshared', compileWorkload('fdtshared')).start();
  const child = Number(fs.readFileSync(`/proc/${w.pid}/task/${w.pid}/children`, 'utf8').trim());
  const { images } = await checkpointRestore(w);
  const ids = [w.pid, child].map((p) => readImage(images, 'ids', p)[0]!.filesId);
  assert.equal(ids[0], ids[1], 'both tasks name one fd table');
  assert.equal(kcmpTasks(w.pid, child, 2), 0, 'the restored tasks do not share their fd table');
  w.go();
  assertPassed(w.finish());
});
