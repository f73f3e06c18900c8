// Files whose path no longer leads to them: unlinked ones and replaced ones come back as
// deleted files with their contents (ghost files); past the ghost limit the dump fails
// clearly and the task keeps running; a deleted cwd fails the dump clearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Workload, REPO, compileWorkload, checkpointRestore, assertPassed, tmpDir, verifyImages, assertDumpRefused } from '../harness.js';
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

test('a removed cwd, a removed directory, an unlinked FIFO and an unlinked symlink come back as they were, deleted, nothing left behind', async () => {
  const w = new Workload('deleted', compileWorkload('deleted')).start();
  const { images } = await checkpointRestore(w);
  const modes = fs.readdirSync(images).filter((f) => f.startsWith('ghost-file-'))
    .map((f) => readImage(images, 'ghost-file', parseInt(f.slice(11, -4), 16)).head.mode & 0o170000).sort((a, b) => a - b);
  assert.deepEqual(modes, [0o010000, 0o040000, 0o040000, 0o120000]); // FIFO, two directories, symlink
  w.go();
  assertPassed(w.finish());
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

test('an unlinked file still linked elsewhere is refused without linkRemap, and with it comes back as the same inode, the temporary link gone', async () => {
  const w = new Workload('linked', compileWorkload('linked')).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [/a\.dat was unlinked or replaced, but its inode has 1 other link\(s\), which a copy would not share; dump with --link-remap/]);
  const { images } = await checkpointRestore(w, { dump: { linkRemap: true } });
  const [remap] = readImage(images, 'remap-fpath', undefined);
  assert.equal(remap?.remapType, 0); // LINKED
  const link = readImage(images, 'files', undefined).find((f) => f.id === remap.remapId)?.reg?.name;
  assert.equal(link, path.join(w.dir, `link_remap.${remap.remapId}`));
  w.go();
  assertPassed(w.finish());
});

// In stasis's own mount namespace (a private copy of it here, so that the mount over the
// directory goes away with it): a shell (its inherited fds closed) holds fd 5 on sub/gone, removed, then a tmpfs is
// mounted over sub. Restore would make the ghost on the tmpfs, another mount and filesystem:
// the dump must refuse it, naming both mounts, and leave the shell counting.
test('an unlinked file whose directory a mount now covers, the tree in stasis\'s mount namespace, is refused at dump, naming both mounts; the tree runs on', { timeout: 60_000 }, () => {
  const dir = tmpDir('ghost-over');
  const script = `
    D=$1; CLI=$2; NODE=$3
    mkdir -p $D/sub
    setsid bash -c 'for f in /proc/$$/fd/*; do n=\${f##*/}; [ $n -gt 2 ] && eval "exec $n>&-"; done; exec 5<>"$1/sub/gone"; echo data >&5; rm "$1/sub/gone"; i=0; while :; do i=$((i+1)); echo $i >>"$1/count"; sleep 0.02; done' _ $D </dev/null >/dev/null 2>&1 &
    pid=$!
    trap 'kill -9 $pid 2>/dev/null' EXIT
    n=0; while [ ! -s $D/count ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done
    mount -t tmpfs over $D/sub || exit 99
    $NODE $CLI dump -t $pid -D $D/img 2>$D/dump.err; echo "rc=$?"
    a=$(wc -l <$D/count); sleep 0.3; b=$(wc -l <$D/count)
    kill -0 $pid 2>/dev/null && [ $b -gt $a ] && echo running
    exit 0
  `;
  try {
    fs.mkdirSync(path.join(dir, 'img'));
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, '_', dir, path.join(REPO, 'bin/stasis.js'), process.execPath], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const err = fs.readFileSync(path.join(dir, 'dump.err'), 'utf8');
    assert.match(r.stdout, /rc=[1-9]/, `the dump went through: ${err}`);
    assert.match(err, /fd 5 of pid \d+: \S+\/sub\/gone was removed or replaced, and its directory \S+\/sub now leads to mount \d+, not to its mount \d+ \(a mount over it hides where the file was\)/);
    assert.match(r.stdout, /running/, 'the tree stopped counting after a refused dump');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
