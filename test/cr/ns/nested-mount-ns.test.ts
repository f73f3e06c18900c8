// A tree whose tasks are in two mount namespaces, as zdtm's mntns_* tests make them: a box
// (`unshare -m -p --fork`, a busybox root bound over itself, proc, pivot_root into it) whose
// init starts a child that unshares a mount namespace of its own, mounts a tmpfs on /mnt
// there (a private mount its parent does not see), writes a file on it, holds it open at fd 7
// past its first line, and sleeps. After dump and restore (--root) the child is again in a
// namespace apart from the root's, each sees the mounts it saw, the child's fd 7 is on the
// child's tmpfs mount (its mnt_id one of the child's mounts) at the same offset, and the file
// is there for the child only. A restore of a dump that lost the child's mountpoints image
// fails and leaves nothing. A grandchild in a namespace copied from the child's, sharing its
// tmpfs, is refused at dump naming both mounts (it would come back as two tmpfs), the tree left running.
// A file the child removed once open (a ghost on its tmpfs) comes back made on the child's
// tmpfs (through its namespace's helper), deleted, with its contents and offset, its fd's
// mount the child's, nothing of it left in either namespace; one linked elsewhere on it too
// (--link-remap), as the same inode as its other name, through the child's mount. A child
// whose namespace holds mounts of a filesystem the root's shows only under other mounts (zdtm
// mntns_remap) comes back with them, of the root's filesystems, showing what they showed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { childOf } from './private-proc.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { assertNoYardLeft, type Box as KitBox, boxUnavailable, cleanUp, makeBoxRoot, nestedBox, refused, spawnBox, commOf, readlinkOr } from './box-kit.js';

const why = boxUnavailable();

interface Box extends KitBox {
  child: number;
}

/**
 * With `nested`, the child's child unshares a namespace of its own from the child's (its /mnt
 * the child's tmpfs); with `ghost`, the child removes /mnt/f once it has it open ('linked':
 * linked as /mnt/g first).
 */
function startBox(nested = false, ghost: boolean | 'linked' | 'dead' = false): Box {
  const dir = tmpDir('nestns');
  const root = makeBoxRoot(dir, ['bin', 'dev', 'proc', 'mnt', 'old'], ['sh', 'sleep', 'umount', 'mount', 'unshare', 'rm']);
  // (Scripts in the box's root: no quoting through three shells.)
  const sleeper = nested ? 'unshare -m sleep 1000 &\n' : '';
  fs.writeFileSync(path.join(root, 'bin/child'), `mount --make-rprivate /\nmount -t tmpfs -o size=1m,mode=755 child-tmp /mnt\nprintf "line1\\nline2\\n" > /mnt/f\nexec 7</mnt/f\nread l <&7\n${ghost === 'linked' ? 'busybox ln /mnt/f /mnt/g\n' : ''}${ghost === 'dead' ? 'sleep 1000 & p=$!\nexec 8</proc/$p/status\nkill $p\nwait $p\n' : ghost ? 'rm /mnt/f\n' : ''}${sleeper}exec sleep 1000\n`, { mode: 0o755 });
  const script = nestedBox(root);
  const { top: unshare, ready: { pid, child } } = spawnBox(dir, script, 'the box and its child in a mount namespace of its own', (top) => {
    const p = childOf(top);
    const c = p === undefined ? undefined : childOf(p);
    const grand = c === undefined ? undefined : childOf(c);
    return p !== undefined && c !== undefined && readlink(`/proc/${c}/fd/7`) === (ghost && ghost !== 'dead' ? '/mnt/f (deleted)' : '/mnt/f') && (ghost !== 'dead' || readlink(`/proc/${c}/fd/8`) !== undefined) && /\bsleep\b/.test(comm(c)) && (!nested || (grand !== undefined && /\bsleep\b/.test(comm(grand)))) ? { pid: p, child: c } : undefined;
  });
  return { dir, root, unshare, pid, child };
}

const readlink = readlinkOr;
const comm = commOf;

/** What a mount is, leaving out what the kernel numbers anew (ids, devices). */
const mountsOf = (pid: number) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).map((m) => `${m.mountPoint} ${m.root} ${m.fsType} ${m.source} ${m.mountOptions.join(',')} ${m.superOptions.join(',')}`);
const posOf = (pid: number, fd: number) => Number(/^pos:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1]);
const mntIdOf = (pid: number, fd: number) => Number(/^mnt_id:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1]);

/** The restored child's fd 7: `link`, at offset `pos`, on the child's own tmpfs mount (not a mount of the root's namespace). */
function assertChildFd(child: number, link: string, pos: number): void {
  assert.equal(fs.readlinkSync(`/proc/${child}/fd/7`), link);
  assert.equal(posOf(child, 7), pos);
  const childTmp = parseMountinfo(fs.readFileSync(`/proc/${child}/mountinfo`, 'utf8')).find((m) => m.mountPoint === '/mnt')!;
  assert.equal(mntIdOf(child, 7), childTmp.mountId);
}

test('a child in a mount namespace of its own, with a private tmpfs and a file open on it, comes back in its own namespace with its mounts, its fd on its mount at its offset', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('nestns-img');
  let restored: number | undefined;
  try {
    const rootBefore = mountsOf(box.pid), childBefore = mountsOf(box.child);
    assert.ok(childBefore.some((m) => m.startsWith('/mnt / tmpfs child-tmp')), childBefore.join('\n'));
    assert.ok(!rootBefore.some((m) => m.startsWith('/mnt ')), rootBefore.join('\n'));
    const pos = posOf(box.child, 7);
    assert.ok(pos > 0, `fd 7 at ${pos}`);
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    verifyImages(images);
    const mountImages = fs.readdirSync(images).filter((f) => /^mountpoints-\d+\.img$/.test(f));
    assert.equal(mountImages.length, 2, mountImages.join(' '));
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    const mnt = (p: number | 'self') => fs.readlinkSync(`/proc/${p}/ns/mnt`);
    assert.notEqual(mnt(r.pid), mnt('self'));
    assert.notEqual(mnt(child), mnt(r.pid));
    assert.deepEqual(mountsOf(r.pid), rootBefore);
    assert.deepEqual(mountsOf(child), childBefore);
    // The fd: its path, its offset, and its mount the child's tmpfs (not one of the root's namespace).
    assertChildFd(child, '/mnt/f', pos);
    assert.equal(fs.readFileSync(`/proc/${child}/fd/7`, 'utf8'), 'line1\nline2\n');
    assert.equal(fs.existsSync(`/proc/${r.pid}/root/mnt/f`), false);
    // No helper is left among the root's children, and nothing of the yards.
    assert.deepEqual(fs.readFileSync(`/proc/${r.pid}/task/${r.pid}/children`, 'utf8').trim().split(/\s+/).map(Number), [child]);
    assertNoYardLeft();
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});

test('a restore whose images lack the child\'s mount namespace fails naming it and leaves nothing', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('nestns-img');
  try {
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    const ids = fs.readdirSync(images).flatMap((f) => /^mountpoints-(\d+)\.img$/.exec(f)?.[1] ?? []).map(Number).sort((a, b) => a - b);
    fs.rmSync(path.join(images, `mountpoints-${ids[ids.length - 1]}.img`));
    const before = new Set(fs.readdirSync('/proc').filter((f) => /^\d+$/.test(f)));
    await assert.rejects(restore({ imagesDir: images, detach: true, root: box.root, noVerify: true }), /mountpoints/);
    const left = fs.readdirSync('/proc').filter((f) => /^\d+$/.test(f) && !before.has(f) && /\bsleep\b/.test(comm(Number(f))));
    assert.deepEqual(left, []);
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});

test('a namespace copied from a nested one, sharing a tmpfs the root\'s namespace does not show, is refused at dump naming both mounts; the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox(true);
  const images = tmpDir('nestns-img');
  try {
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(/mount \d+ at \/mnt \(tmpfs child-tmp\) shows the filesystem of mount \d+ at \/mnt \(tmpfs child-tmp\) of mnt namespace/));
    // Left running: the child still holds its file, and its child still sleeps.
    assert.equal(readlink(`/proc/${box.child}/fd/7`), '/mnt/f');
    assert.match(fs.readFileSync(`/proc/${box.child}/stat`, 'utf8'), /\) S /);
    assert.ok(childOf(box.child) !== undefined);
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});

test('a file the child removed from its private tmpfs, held open, comes back deleted on the child\'s tmpfs with its contents and offset, nothing left in either namespace', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox(false, true);
  const images = tmpDir('nestns-img');
  let restored: number | undefined;
  try {
    const pos = posOf(box.child, 7);
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    verifyImages(images);
    assert.equal(fs.readdirSync(images).filter((f) => f.startsWith('ghost-file-')).length, 1);
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    assertChildFd(child, '/mnt/f (deleted)', pos);
    assert.equal(fs.statSync(`/proc/${child}/fd/7`).nlink, 0);
    assert.equal(fs.readFileSync(`/proc/${child}/fd/7`, 'utf8'), 'line1\nline2\n');
    assert.deepEqual(fs.readdirSync(`/proc/${child}/root/mnt`), []);
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root/mnt`), []);
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});

test('a file the child removed from its private tmpfs and still linked there comes back, with --link-remap, as the inode of its other name, through the child\'s mount, no temporary link left', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox(false, 'linked');
  const images = tmpDir('nestns-img');
  let restored: number | undefined;
  try {
    const pos = posOf(box.child, 7);
    await dump({ pid: box.pid, imagesDir: images, root: box.root, linkRemap: true });
    waitPid(box.unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    assertChildFd(child, '/mnt/f (deleted)', pos);
    const a = fs.statSync(`/proc/${child}/fd/7`), b = fs.statSync(`/proc/${child}/root/mnt/g`);
    assert.deepEqual([a.dev, a.ino, a.nlink], [b.dev, b.ino, 1]);
    assert.deepEqual(fs.readdirSync(`/proc/${child}/root/mnt`), ['g']);
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root/mnt`), []);
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});

test('a /proc file of a process gone, held by the child through its namespace\'s /proc, is refused at dump naming its mount (restore would reopen it through the root\'s); the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox(false, 'dead');
  const images = tmpDir('nestns-img');
  try {
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(/fd 8 of pid \d+: \/proc\/\d+\/status is a file of a process that is gone, on mount \d+ of a mount namespace below the tree's root's/));
    assert.match(comm(box.child), /sleep/);
    assert.equal(fs.readlinkSync(`/proc/${box.child}/fd/7`), '/mnt/f');
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});

/**
 * zdtm mntns_remap's mounts in the box's namespace, under /r (a tmpfs, A): /r/1 a bind of
 * itself (B, A's /1, with f-one), /r/1/a a shared bind of itself (E) bound on /r/2/a (F, its
 * peer) of the tmpfs on /r/2 (C, with f-two), a tmpfs on /r/1/a/c (G, with f-c: F gets its
 * peer), then C moved onto /r/1: B, E and G are covered, A's /1 shown only under C. The child
 * unshares with its mounts made shared (busybox's unshare has no `unchanged`), E's and F's
 * copies staying their peers.
 */
function remapBox(): Box {
  const dir = tmpDir('nestns-remap');
  const root = makeBoxRoot(dir, ['bin', 'dev', 'proc', 'old', 'r'], ['sh', 'sleep', 'umount', 'mount', 'unshare']);
  fs.writeFileSync(path.join(root, 'bin/child'), 'exec sleep 1000\n', { mode: 0o755 });
  const r = `${root}/r`, tmp = (name: string, at: string) => `mount -t tmpfs -o size=1m,mode=755 ${name} ${at}`;
  const setup = [
    tmp('remap-a', r), `mkdir ${r}/1 ${r}/2`, `echo one > ${r}/1/f-one`,
    `mount --bind ${r}/1 ${r}/1`, `mount --make-private ${r}/1`,
    tmp('remap-c', `${r}/2`), `echo two > ${r}/2/f-two`,
    `mkdir -p ${r}/1/a/x ${r}/2/a`, `echo in-a > ${r}/1/a/f-a`,
    `mount --bind ${r}/1/a ${r}/1/a`, `mount --make-shared ${r}/1/a`, `mount --bind ${r}/1/a ${r}/2/a`,
    `mkdir ${r}/1/a/c`, tmp('remap-g', `${r}/1/a/c`), `echo in-c > ${r}/1/a/c/f-c`,
    `mount --move ${r}/2 ${r}/1`,
  ].join('\n    ');
  const script = nestedBox(root, { setup, unshare: '--propagation shared' });
  const { top: unshare, ready: { pid, child } } = spawnBox(dir, script, 'the box and its child in a mount namespace of its own', (top) => {
    const p = childOf(top);
    const c = p === undefined ? undefined : childOf(p);
    return p !== undefined && c !== undefined && /\bsleep\b/.test(comm(c)) && readlink(`/proc/${c}/ns/mnt`) !== readlink(`/proc/${p}/ns/mnt`) ? { pid: p, child: c } : undefined;
  });
  return { dir, root, unshare, pid, child };
}

test('a child\'s namespace with mounts of a filesystem the root\'s namespace shows only under other mounts (zdtm mntns_remap) comes back: its mounts as they were, the same filesystems as the root\'s, what they show at their paths, F\'s copy still a peer of the root\'s F', { skip: why, timeout: 60_000 }, async () => {
  const box = remapBox();
  const images = tmpDir('nestns-remap-img');
  let restored: number | undefined;
  const read = (pid: number, p: string) => fs.readFileSync(`/proc/${pid}/root${p}`, 'utf8');
  const devAt = (pid: number, mp: string, root: string) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).filter((m) => m.mountPoint === mp && m.root === root).map((m) => `${m.dev.major}:${m.dev.minor}`);
  // Each mount with the mounts it is on, down to the root: stacking and parents, in no order (a restore makes them in its own).
  const treeOf = (pid: number) => {
    const all = parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')), text = mountsOf(pid);
    const chain = (i: number, n = 0): string => {
      const up = all.findIndex((m) => m.mountId === all[i]!.parentId);
      return up < 0 || n > all.length ? text[i]! : `${chain(up, n + 1)}\n  ${text[i]!}`;
    };
    return all.map((_, i) => chain(i)).sort();
  };
  try {
    const rootBefore = treeOf(box.pid), childBefore = treeOf(box.child);
    // Two mounts on /r/1 in the child's namespace too: A's /1 (covered) and C.
    assert.deepEqual(mountsOf(box.child).filter((m) => m.startsWith('/r/1 ')).map((m) => m.split(' ').slice(0, 4).join(' ')), ['/r/1 /1 tmpfs remap-a', '/r/1 / tmpfs remap-c']);
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    assert.notEqual(fs.readlinkSync(`/proc/${child}/ns/mnt`), fs.readlinkSync(`/proc/${r.pid}/ns/mnt`));
    assert.deepEqual(treeOf(r.pid), rootBefore);
    assert.deepEqual(treeOf(child), childBefore);
    // What the paths show in the child's namespace: C's file, A's /1/a through F's copy, G's file through its copy; B's f-one is covered.
    assert.equal(read(child, '/r/1/f-two'), 'two\n');
    assert.equal(read(child, '/r/1/a/f-a'), 'in-a\n');
    assert.equal(read(child, '/r/1/a/c/f-c'), 'in-c\n');
    assert.equal(fs.existsSync(`/proc/${child}/root/r/1/f-one`), false);
    // The child's covered /r/1 is a mount of the root's /r's filesystem (A), not a copy of it; C's is the root's C.
    const a = devAt(r.pid, '/r', '/');
    assert.equal(a.length, 1);
    assert.deepEqual(devAt(child, '/r/1', '/1'), a);
    assert.deepEqual(devAt(child, '/r', '/'), a);
    fs.writeFileSync(`/proc/${r.pid}/root/r/1/from-root`, 'root\n');
    assert.equal(read(child, '/r/1/from-root'), 'root\n');
    // F's copy in the child's namespace is a peer of the root's F: a mount on its /r/1/a/x reaches the root's.
    const inChild = spawnSync('nsenter', ['-t', String(child), '-m', '-r', '--', '/bin/busybox', 'mount', '-t', 'tmpfs', 'late', '/r/1/a/x'], { encoding: 'utf8' });
    assert.equal(inChild.status, 0, inChild.stderr);
    assert.ok(mountsOf(r.pid).some((m) => m.startsWith('/r/1/a/x / tmpfs late ')), mountsOf(r.pid).join('\n'));
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});
