// Files whose path no longer leads to them: unlinked ones and replaced ones come back as
// deleted files with their contents (ghost files); past the ghost limit the dump fails
// clearly and the task keeps running; a deleted cwd fails the dump clearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, verifyImages, assertDumpRefused } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { StasisError } from '../../../src/errors.js';
import { spawnTask, kill, waitPid } from '../../../src/sys/index.js';

const tracer = (pid: number) => /TracerPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];

test('an unlinked file open twice and a replaced path come back deleted, with their contents, offsets and one inode', async () => {
  const w = new Workload('ghost', compileWorkload('ghost')).start();
  const { images } = await checkpointRestore(w);
  const remaps = readImage(images, 'remap-fpath', undefined);
  // fds 10 and 11 (two opens of ghost.bin) share one ghost; victim.txt has its own.
  assert.equal(remaps.length, 3);
  assert.equal(new Set(remaps.map((r) => r.remapId)).size, 2);
  const ghosts = fs.readdirSync(images).filter((f) => f.startsWith('ghost-file-'));
  assert.equal(ghosts.length, 2);
  // ghost.bin's 64 KiB hole is not in its image: chunks cover the data only.
  const big = ghosts.map((f) => readImage(images, 'ghost-file', parseInt(f.slice(11, -4), 16))).find((g) => g.head.size === 102400n)!;
  assert.ok(big.head.chunks);
  assert.equal(big.chunks.reduce((n, c) => n + Number(c.entry.len), 0), 102400 - 65536);
  // Nothing of the ghosts is left in the workload's directory.
  assert.deepEqual(fs.readdirSync(w.dir).filter((f) => f.includes('ghost')), []);
  w.go();
  assertPassed(w.finish());
});

test('a deleted file past the ghost limit fails the dump with a clear error and the task keeps running; a higher limit dumps it', async () => {
  const w = new Workload('ghost-big', compileWorkload('ghost'), [String(2 << 20)]).start();
  try {
    await assertDumpRefused(w, 'E_GHOST_LIMIT', [/big\.bin was deleted or replaced and its contents \(\d+ bytes\) exceed the ghost file limit of 1048576 bytes; raise it with --ghost-limit/]);
    assert.equal(fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8').split(') ')[1]?.[0] === 'Z', false);

    const images = tmpDir('ghost-big-img');
    const d = await dump({ pid: w.pid, imagesDir: images, ghostLimit: 4 << 20 });
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false);
    verifyImages(images);
    assert.ok(d.imageBytes > 2 << 20);
    await restore({ imagesDir: images, detach: true });
    w.go();
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});

test('a task whose working directory was deleted fails the dump with a clear error and keeps running', async () => {
  const dir = tmpDir('gone-cwd');
  const pid = spawnTask(['sleep', '60'], { cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: '/dev/null' }, stderr: { path: '/dev/null' } });
  try {
    fs.rmdirSync(dir);
    await assert.rejects(async () => dump({ pid, imagesDir: tmpDir('gone-cwd-img') }),
      new RegExp(`Cannot dump pid ${pid}: its working directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was deleted; stasis cannot restore a deleted working directory yet`));
    assert.equal(tracer(pid), '0');
    assert.equal(fs.readlinkSync(`/proc/${pid}/cwd`), `${path.resolve(dir)} (deleted)`);
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
});

test('a task whose executable was deleted fails the dump with a clear error and keeps running', async () => {
  const dir = tmpDir('gone-exe');
  const exe = path.join(dir, 'sleeper');
  fs.copyFileSync(fs.realpathSync('/bin/sleep'), exe);
  fs.chmodSync(exe, 0o755);
  const pid = spawnTask([exe, '60'], { cwd: '/', stdin: { path: '/dev/null' }, stdout: { path: '/dev/null' }, stderr: { path: '/dev/null' } });
  try {
    fs.rmSync(exe);
    await assert.rejects(async () => dump({ pid, imagesDir: tmpDir('gone-exe-img') }), (e: unknown) => {
      assert.ok(e instanceof StasisError && e.code === 'E_UNSUPPORTED', String(e));
      assert.match(e.message, /deleted/);
      return true;
    });
    assert.equal(tracer(pid), '0');
    assert.equal(fs.readlinkSync(`/proc/${pid}/exe`), `${exe} (deleted)`);
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
});
