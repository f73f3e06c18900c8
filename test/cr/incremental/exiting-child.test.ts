// Regression: a pre-dump thaws the tree before it reads the memory, so a task may exit in
// between (a shell's sleep, runc's busybox loop): process_vm_readv then fails with ESRCH, and
// the pre-dump failed as a whole. Such a task is now left out (no pagemap, no pages, not in
// the pre-dump's pstree), and a final dump on top of the last pre-dump restores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir, waitFor, descendants } from '../harness.js';
import { preDump, dump, restore } from '../../../src/api/index.js';
import { spawnTask, waitPid, kill } from '../../../src/sys/index.js';
import { killTree } from '../ns/private-proc.js';

test('pre-dumps of a shell whose sleep children come and go all succeed, and a dump on top restores', async () => {
  const dir = tmpDir('incr-exiting');
  // Children of 1 ms (bash forks them; dash's vfork would be refused): many pre-dumps see one exit once thawed.
  const sh = spawnTask(['bash', '-c', `while :; do sleep 0.001; echo x >> ${dir}/count; done`], { cwd: dir, stdin: { path: '/dev/null' } });
  let restored: number | undefined;
  try {
    waitFor('the loop', () => fs.existsSync(`${dir}/count`));
    const logs: string[] = [];
    const log = { level: 3, info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m), debug: () => {} };
    let prev: string | undefined;
    const n = 30;
    for (let i = 0; i < n; i++) {
      const d = path.join(dir, `pre${i}`);
      await preDump({ pid: sh, imagesDir: d, ...(prev ? { prevImagesDir: `../${path.basename(prev)}` } : {}), log: log as never });
      prev = d;
    }
    const left = logs.filter((m) => /exited after the freeze: its pages are left out/.test(m)).length;
    console.log(`# ${n} pre-dumps, ${left} with a child that exited after the freeze`);
    await dump({ pid: sh, imagesDir: path.join(dir, 'dump'), prevImagesDir: `../${path.basename(prev!)}` });
    try {
      waitPid(sh); // reaped by the dump's kill already, or now
    } catch {
      /* ECHILD */
    }
    const before = fs.readFileSync(`${dir}/count`, 'utf8').length;
    const r = await restore({ imagesDir: path.join(dir, 'dump'), detach: true });
    restored = r.pid;
    waitFor('the restored loop to count on', () => fs.readFileSync(`${dir}/count`, 'utf8').length > before + 20);
    assert.ok(descendants(r.pid).length <= 1);
  } finally {
    if (restored) {
      killTree(restored);
      waitPid(restored);
    }
    try {
      kill(sh, 9);
      waitPid(sh);
    } catch {
      /* dumped and gone */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
