// Deleted files inside a tree's own mount (and pid) namespace: `unshare -m -p --fork`, a
// busybox root bound over itself, a tmpfs on /tmp, proc on /proc, then pivot_root into it. Its
// shell holds open a file of the tmpfs it wrote and removed (fd 5), one of the root mount it
// removed (fd 6), and /proc/PID/status of a child it reaped (fd 7), then counts into /tmp/count;
// /tmp/dst and /bind-dst are binds of a directory and an empty file removed since (zdtm mntns_deleted).
// After dump and restore the files are back in the restored namespace, not stasis's: the same
// contents and offsets, link count 0, their links `/tmp/gone (deleted)` on the tmpfs's mount;
// fd 7 names the dead pid of the tree's pid namespace; no name of the ghosts is left behind,
// in the tree's mounts or the host's, the binds of removed roots show them removed, and the
// count goes on. A bind of a removed file with data is refused at dump (it would come back empty).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { compileWorkload, tmpDir, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { childOf } from './private-proc.js';
import { type Box, assertCountGoesOn, assertCountsOn, boxUnavailable, childWhen, cleanUp, countOf, makeBoxRoot, refused, spawnBox } from './box-kit.js';

const why = boxUnavailable();

function startBox(opts: { boundData?: true } = {}): Box {
  const dir = tmpDir('ghostns');
  const root = makeBoxRoot(dir, ['bin', 'proc', 'tmp', 'old'], ['sh', 'sleep', 'umount', 'rm']);
  // fd 5 is written through (its offset the end, 4 KiB of hole first); fd 6 read 4 bytes into.
  const loop = [
    'umount -l /old', 'exec </dev/null >/tmp/out 2>&1',
    'exec 5<>/tmp/gone', 'busybox dd if=/dev/zero bs=4096 count=1 >&5 2>/dev/null', 'printf "ghost on the tmpfs\\n" >&5', 'rm /tmp/gone',
    'printf "ghost on the root\\n" >/gone-root', 'exec 6</gone-root', 'busybox dd bs=4 count=1 <&6 >/dev/null 2>/dev/null', 'rm /gone-root',
    'sleep 1000 & p=$!', 'exec 7</proc/$p/status', 'kill $p', 'wait $p', 'echo $p >/tmp/dead',
    'i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.02; done',
  ].join('; ');
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs -o size=1m,mode=755 box-tmp ${root}/tmp
    mkdir ${root}/dev; mknod ${root}/dev/null c 1 3; mknod ${root}/dev/zero c 1 5
    mkdir ${root}/tmp/src ${root}/tmp/dst; mount --bind ${root}/tmp/src ${root}/tmp/dst; rmdir ${root}/tmp/src
    ${opts.boundData ? `echo data >${root}/bind-src` : `touch ${root}/bind-src`}; touch ${root}/bind-dst; mount --bind ${root}/bind-src ${root}/bind-dst; rm ${root}/bind-src
    mount -t proc -o nosuid proc ${root}/proc
    cd ${root} && pivot_root . old
    exec /bin/sh -c '${loop}'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box counting', childWhen((c) => lines(c).length >= 3));
  return { dir, root, unshare, pid };
}

const lines = (pid: number) => countOf(pid, '/tmp/count');

/** What fd `fd` of `pid` is: its link, contents, offset, link count, mode and mount (by mountpoint). */
function fdState(pid: number, fd: number) {
  const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\S+)$`, 'm').exec(info)?.[1]);
  const st = fs.statSync(`/proc/${pid}/fd/${fd}`);
  const mount = parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).find((m) => m.mountId === field('mnt_id'))?.mountPoint;
  return {
    link: fs.readlinkSync(`/proc/${pid}/fd/${fd}`), contents: fs.readFileSync(`/proc/${pid}/fd/${fd}`).toString('hex'),
    pos: field('pos'), flags: (field('flags') & 0o3).toString(8), nlink: st.nlink, mode: st.mode.toString(8), size: st.size, mount,
  };
}

/** The mounts of `pid`'s namespace by mountpoint, root and filesystem (ids and devices are new after a restore). */
const mountsOf = (pid: number) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).map((m) => `${m.mountPoint} ${m.root} ${m.fsType}`);

test('deleted files held open inside a tree\'s own mount namespace (on its tmpfs, on its root mount) come back there with their contents, offsets and link count 0, as "(deleted)"; a dead pid\'s /proc file names the pid of its pid namespace; no ghost name is left', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('ghostns-img');
  let restored: number | undefined;
  try {
    const before = [5, 6].map((fd) => fdState(box.pid, fd));
    assert.equal(before[0]!.link, '/tmp/gone (deleted)');
    assert.equal(before[0]!.pos, 4096 + 19);
    assert.equal(before[0]!.mount, '/tmp');
    assert.equal(before[1]!.link, '/gone-root (deleted)');
    assert.equal(before[1]!.pos, 4);
    assert.ok(before.every((b) => b.nlink === 0), JSON.stringify(before));
    const dead = fs.readFileSync(`/proc/${box.pid}/root/tmp/dead`, 'utf8').trim();
    const mounts = mountsOf(box.pid);
    assert.ok(mounts.includes('/tmp/dst /src//deleted tmpfs') && mounts.some((m) => m.startsWith(`/bind-dst ${box.root}/bind-src//deleted `)), mounts.join('\n'));
    assert.equal(fs.readlinkSync(`/proc/${box.pid}/fd/7`), `/proc/${dead}/status`);
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    verifyImages(images);
    const files = fs.readdirSync(images);
    assert.equal(files.filter((f) => /^ghost-file-[0-9a-f]+\.img$/.test(f)).length, 2, files.join(' '));
    assert.ok(files.includes('remap-fpath.img'), files.join(' '));
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    assert.deepEqual(mountsOf(r.pid), mounts);
    assert.notEqual(fs.readlinkSync(`/proc/${r.pid}/ns/mnt`), fs.readlinkSync('/proc/self/ns/mnt'));
    assert.deepEqual([5, 6].map((fd) => fdState(r.pid, fd)), before);
    assert.equal(fs.readlinkSync(`/proc/${r.pid}/fd/7`), `/proc/${dead}/status`);
    // Made in the restored tmpfs and root, and removed there: no name of theirs is left, nor on the host.
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root/tmp`).sort(), ['count', 'dead', 'dst', 'out']);
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root`).sort(), ['bin', 'bind-dst', 'dev', 'old', 'proc', 'tmp']);
    assert.deepEqual(fs.readdirSync(box.root).sort(), ['bin', 'bind-dst', 'dev', 'old', 'proc', 'tmp']);
    assert.deepEqual(fs.readdirSync(path.join(box.root, 'tmp')), []);
    const atRestore = lines(r.pid).length;
    assertCountGoesOn(() => lines(r.pid), atRestore);
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});

test('a bind of a removed file that held data, inside a tree\'s own mount namespace, is refused at dump, naming the mount; the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox({ boundData: true });
  const images = tmpDir('ghostns-img');
  try {
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(
      /mount \d+ at \/bind-dst is a bind of \S*\/bind-src, removed since; it is a file with data \(5 bytes\), which stasis would bring back empty/));
    assertCountsOn(() => lines(box.pid));
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});

// zdtm overmount_sock, checked from outside (with a network namespace of its own, which makes its
// socket pair's SO_PEERCRED restorable): the name's file is made again under the mount, not on it.
test('a Unix listener and connection whose name\'s file a mount hides come back with their name, the listener\'s file made again under that mount (not on it), and go on', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('hidden-sock');
  const root = makeBoxRoot(dir, ['bin', 'srv', 'old', 'dev']);
  fs.copyFileSync(compileWorkload('hidden-sock', ['-static']), path.join(root, 'bin/hidden-sock'));
  const script = `set -e; mknod ${root}/dev/null c 1 3; mount --bind ${root} ${root}; cd ${root}; pivot_root . old; exec /bin/busybox sh -c '/bin/busybox umount -l /old; exec /bin/hidden-sock </dev/null >/dev/null 2>&1'`;
  const count = (pid: number) => countOf(pid, '/srv/count');
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the workload counting', childWhen((c) => count(c).length >= 3), ['-m', '-p', '-n', '--fork']);
  const images = tmpDir('hidden-sock-img');
  let restored: number | undefined;
  try {
    // The listener and its accepted end show the name; the mount's tmpfs hides its file.
    const names = (p: number) => fs.readFileSync(`/proc/${p}/net/unix`, 'utf8').split('\n').filter((l) => l.endsWith(' dir/sock')).length;
    assert.equal(names(pid), 2);
    assert.deepEqual(fs.readdirSync(`/proc/${pid}/root/srv/dir`), []);
    await dump({ pid, imagesDir: images, root });
    waitPid(unshare);
    // The dumped listener's file, left on the host's directory: gone, so that only a restore that binds under the mount makes it.
    assert.ok(fs.lstatSync(path.join(root, 'srv/dir/sock')).isSocket());
    fs.unlinkSync(path.join(root, 'srv/dir/sock'));
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    assert.equal(names(r.pid), 2);
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root/srv/dir`), []);
    // The file under the mount is the restored listener's: it answers there (the host sees the directory the mount hides).
    const hi = await new Promise<string>((resolve, reject) => {
      const c = net.connect(path.join(root, 'srv/dir/sock'));
      let got = '';
      c.on('data', (b) => (got += b.toString())).on('end', () => resolve(got)).on('error', reject);
    });
    assert.equal(hi, 'hi');
    const at = count(r.pid).length;
    assertCountGoesOn(() => count(r.pid), at);
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});

test('a file whose directory a mount now covers (the deleted one, the shell\'s output), inside a tree\'s own mount namespace, is refused at dump, naming both mounts (restore would make it on the mount over it); the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('ghostns-img');
  try {
    // (The bind on /tmp/dst first taken off: the mount over /tmp would hide it too.)
    const r = spawnSync('nsenter', ['-t', String(box.pid), '-m', '--', '/bin/busybox', 'sh', '-c', '/bin/busybox umount /tmp/dst && /bin/busybox mount -t tmpfs over /tmp'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(
      /fd \d+ of pid \d+: \/tmp\/(gone|out) was removed or replaced, and its directory \/tmp now leads to mount \d+, not to its mount \d+ \(a mount over it hides where the file was\)/));
    assertCountsOn(() => lines(box.pid));
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});

// zdtm ghost_on_rofs, checked from outside: a deleted file on a tmpfs mounted read-only per mount
// (its filesystem writable). Restore makes the ghost through a writable clone of the mount, and
// opens it through the read-only mount itself, which stays read-only.
test('a deleted file on a mount read-only per mount comes back open through that mount, which stays read-only, with its contents, offset and flags, deleted, and no name left on it', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('ghost-rofs');
  const root = makeBoxRoot(dir, ['bin', 'ro', 'tmp', 'old']);
  const loop = '/bin/busybox umount -l /old; exec </dev/null >/dev/null 2>&1; i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; /bin/busybox sleep 0.02; done';
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs -o size=1m box-tmp ${root}/tmp
    mount -t tmpfs -o size=1m box-ro ${root}/ro
    mkdir ${root}/dev; mknod ${root}/dev/null c 1 3
    printf 'ghost on a read-only mount\\n' >${root}/ro/gone
    exec 5<${root}/ro/gone
    dd bs=6 count=1 <&5 >/dev/null 2>&1
    rm ${root}/ro/gone
    mount -o remount,bind,ro ${root}/ro
    cd ${root} && pivot_root . old
    exec /bin/busybox sh -c '${loop}'
  `;
  const count = (pid: number) => countOf(pid, '/tmp/count');
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box counting', childWhen((c) => count(c).length >= 3));
  const images = tmpDir('ghost-rofs-img');
  let restored: number | undefined;
  const roMount = (p: number) => parseMountinfo(fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8')).find((m) => m.mountPoint === '/ro');
  try {
    const before = fdState(pid, 5);
    assert.deepEqual(before, { ...before, link: '/ro/gone (deleted)', pos: 6, flags: '0', nlink: 0, mount: '/ro' });
    assert.equal(Buffer.from(before.contents, 'hex').toString(), 'ghost on a read-only mount\n');
    assert.ok(roMount(pid)!.mountOptions.includes('ro') && roMount(pid)!.superOptions.includes('rw'), JSON.stringify(roMount(pid)));
    await dump({ pid, imagesDir: images, root });
    waitPid(unshare);
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    assert.deepEqual(fdState(r.pid, 5), before);
    const ro = roMount(r.pid)!;
    assert.ok(ro.mountOptions.includes('ro') && ro.superOptions.includes('rw'), JSON.stringify(ro));
    // The fd is on that mount (fdState's mount is the mountpoint of its mnt_id), and writing through it is refused.
    assert.throws(() => fs.openSync(`/proc/${r.pid}/root/ro/x`, 'w'), /EROFS/);
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root/ro`), []);
    const at = count(r.pid).length;
    assertCountGoesOn(() => count(r.pid), at);
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});

// zdtm mntns_link_ghost, checked from outside: the box's init binds /t/1 of a tmpfs at /b1 and
// opens /b1/F (fd 5, 6 bytes in), links it as /t/2/F; its child, in a mount namespace of its
// own, drops /b1 and /t, binds /t/2 at /b2 and opens /b2/F (fd 6), keeping fd 5; init removes
// both names. One inode, deleted, open through two mounts of two directories: restore makes the
// ghost in one and links it into the other through /t, the mount that shows both.
test('a deleted inode open through binds of two directories, in two mount namespaces, comes back as one inode through each bind, deleted, with its contents and offsets, no name left', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('ghost-binds');
  const root = makeBoxRoot(dir, ['bin', 'dev', 't', 'b1', 'b2', 'old'], ['sh', 'sleep', 'umount', 'mount', 'unshare', 'rm', 'ln', 'mkdir', 'dd']);
  fs.writeFileSync(path.join(root, 'bin/child'), 'mount --make-rprivate /\numount /b1\nmount --bind /t/2 /b2\numount /t\nexec 6</b2/F\n: >/child-ready\nexec sleep 1000\n', { mode: 0o755 });
  fs.writeFileSync(path.join(root, 'bin/init'), [
    'umount -l /old', 'exec </dev/null >/dev/null 2>&1', 'mount -t tmpfs -o size=1m box-t /t', 'mkdir /t/1 /t/2', 'mount --bind /t/1 /b1',
    'printf "ghost through two binds\\n" >/b1/F', 'exec 5<>/b1/F', 'dd bs=6 count=1 <&5 >/dev/null 2>&1', 'ln /t/1/F /t/2/F',
    'unshare -m /bin/sh /bin/child &', 'exec 5<&-', 'while [ ! -e /child-ready ]; do sleep 0.01; done', 'rm /t/1/F /t/2/F', 'exec sleep 1000', '',
  ].join('\n'), { mode: 0o755 });
  const script = `set -e; mknod ${root}/dev/null c 1 3; mount --bind ${root} ${root}; cd ${root}; pivot_root . old; exec /bin/sh /bin/init`;
  const deleted = (p: number, fd: number) => fs.readlinkSync(`/proc/${p}/fd/${fd}`).endsWith(' (deleted)');
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the child holding the removed file twice', (top) => {
    const init = childOf(top), c = init === undefined ? undefined : childOf(init);
    try {
      return init !== undefined && c !== undefined && deleted(c, 5) && deleted(c, 6) && /\bsleep\b/.test(fs.readFileSync(`/proc/${init}/comm`, 'utf8')) ? init : undefined;
    } catch {
      return undefined;
    }
  });
  /** fd `fd` of the child of `init`: link, contents, offset, access mode, links, inode, and the mountpoint of its mnt_id in the mounts of `nsOf`'s namespace. */
  const state = (init: number, fd: number, nsOf: 'init' | 'child') => {
    const c = childOf(init)!;
    const info = fs.readFileSync(`/proc/${c}/fdinfo/${fd}`, 'utf8');
    const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\S+)$`, 'm').exec(info)?.[1]);
    const st = fs.statSync(`/proc/${c}/fd/${fd}`, { bigint: true });
    const mounts = parseMountinfo(fs.readFileSync(`/proc/${nsOf === 'init' ? init : c}/mountinfo`, 'utf8'));
    return {
      link: fs.readlinkSync(`/proc/${c}/fd/${fd}`), contents: fs.readFileSync(`/proc/${c}/fd/${fd}`, 'utf8'), pos: field('pos'), flags: (field('flags') & 0o3).toString(8),
      nlink: Number(st.nlink), ino: st.ino, mount: mounts.find((m) => m.mountId === field('mnt_id'))?.mountPoint,
    };
  };
  const images = tmpDir('ghost-binds-img');
  let restored: number | undefined;
  try {
    const before = [state(pid, 5, 'init'), state(pid, 6, 'child')];
    assert.deepEqual(before.map(({ ino: _, ...s }) => s), [
      { link: '/b1/F (deleted)', contents: 'ghost through two binds\n', pos: 6, flags: '2', nlink: 0, mount: '/b1' },
      { link: '/b2/F (deleted)', contents: 'ghost through two binds\n', pos: 0, flags: '0', nlink: 0, mount: '/b2' },
    ]);
    await dump({ pid, imagesDir: images, root });
    waitPid(unshare);
    assert.equal(fs.readdirSync(images).filter((f) => /^ghost-file-[0-9a-f]+\.img$/.test(f)).length, 1);
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    const after = [state(r.pid, 5, 'init'), state(r.pid, 6, 'child')];
    assert.equal(after[0]!.ino, after[1]!.ino, 'one inode through both binds');
    assert.deepEqual(after.map(({ ino: _, ...s }) => s), before.map(({ ino: _, ...s }) => s));
    assert.notEqual(fs.readlinkSync(`/proc/${childOf(r.pid)!}/ns/mnt`), fs.readlinkSync(`/proc/${r.pid}/ns/mnt`));
    // Neither the ghost nor its link into the other directory is left.
    assert.deepEqual([fs.readdirSync(`/proc/${r.pid}/root/t/1`), fs.readdirSync(`/proc/${r.pid}/root/t/2`)], [[], []]);
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});
