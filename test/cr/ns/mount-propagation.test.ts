// Mount propagation in a tree's own mount namespace: a busybox box (`unshare -m -p --fork
// --propagation private`, its root bound over itself) with a shared tmpfs on /shared, a peer
// of a directory of it on /peer, a slave of it on /slave made shared again (a peer group that
// is a slave of another), a peer of that on /slave-peer and an unbindable tmpfs on /unb; its
// shell counts into /shared/count. After dump and restore the mounts come back with the same
// peer groups (up to the kernel's numbering) and they propagate as before: a mount on /shared
// reaches /slave and /slave-peer, one on /slave reaches /slave-peer and not /shared, /unb
// cannot be bound. A box whose mount is in a peer group of a mount namespace outside the tree,
// or a slave of one, is refused at dump naming the mount, the tree left running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir, verifyImages, descendants } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { assertNoYardLeft, type Box, assertCountGoesOn, assertCountsOn, boxUnavailable, cleanUp, countOf, makeBoxRoot, refused, spawnBox } from './box-kit.js';

const why = boxUnavailable();

const LOOP = 'umount -l /old; exec </shared/null >/shared/null 2>&1; i=0; while :; do i=$((i+1)); echo $i >> /shared/count; sleep 0.02; done';

const makeRoot = (dir: string) => makeBoxRoot(dir, ['bin', 'shared', 'peer', 'slave', 'slave-peer', 'unb', 'tmp', 'old'], ['sh', 'sleep', 'umount']);

/** The box whose shell counts into /shared/count, once it counts (a ready for spawnBox). */
function boxPid(top: number): number | undefined {
  return descendants(top).find((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/comm`, 'utf8') === 'sh\n' && fs.readFileSync(`/proc/${p}/root/shared/count`, 'utf8').split('\n').length > 3 && !fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8').includes(' /old ');
    } catch {
      return false;
    }
  });
}

function startBox(): Box {
  const dir = tmpDir('mntprop');
  const root = makeRoot(dir);
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs -o size=1m,mode=755 box-shared ${root}/shared
    mkdir ${root}/shared/sub ${root}/shared/x; echo hello > ${root}/shared/sub/file; mknod ${root}/shared/null c 1 3
    mount --make-shared ${root}/shared
    mount --bind ${root}/shared/sub ${root}/peer
    mount --bind ${root}/shared ${root}/slave
    mount --make-slave ${root}/slave
    mount --make-shared ${root}/slave
    mount --bind ${root}/slave ${root}/slave-peer
    mount -t tmpfs -o size=1m box-unb ${root}/unb
    mount --make-unbindable ${root}/unb
    cd ${root} && pivot_root . old
    exec /bin/sh -c '${LOOP}'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box counting', boxPid);
  return { dir, root, unshare, pid };
}

/**
 * A box whose /shared is a peer of a tmpfs of a mount namespace outside it, which its outer
 * shell holds (`unshare --propagation unchanged` keeps the copy a peer).
 */
function startTiedBox(): Box {
  const dir = tmpDir('mntprop-tied');
  const root = makeRoot(dir);
  const inner = `
    set -e
    mount --bind ${root} ${root}
    mount --bind ${dir}/outer ${root}/shared
    cd ${root} && pivot_root . old
    exec /bin/sh -c '${LOOP}'
  `;
  const outer = `
    set -e
    mkdir ${dir}/outer
    mount -t tmpfs -o size=1m box-outer ${dir}/outer
    mknod ${dir}/outer/null c 1 3
    mount --make-shared ${dir}/outer
    unshare -m -p --fork --propagation unchanged sh -c '${inner.replace(/'/g, `'\\''`)}'
    exit 0
  `;
  // (Its unshare holds the outer namespace; the box's is its grandchild's.)
  const { top: unshare, ready: pid } = spawnBox(dir, outer, 'the box counting', boxPid, ['-m']);
  return { dir, root, unshare, pid };
}

const mounts = (pid: number) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));

/** The mounts as lines, peer groups numbered in the order they first appear (the kernel numbers them anew). */
function mountsOf(pid: number): string[] {
  const n = new Map<string, number>();
  const num = (g: number) => (n.has(String(g)) ? n.get(String(g))! : n.set(String(g), n.size + 1).get(String(g))!);
  return mounts(pid).map((m) => `${m.mountPoint} ${m.root} ${m.fsType} ${m.source} ${m.mountOptions.join(',')} ${m.superOptions.join(',')} ${m.optionalFields.map((f) => f.replace(/^(shared|master):(\d+)$/, (_, k: string, g: string) => `${k}:#${num(Number(g))}`)).join(' ')}`);
}

/** Runs busybox `cmd` in the mount namespace and root of `pid`; its exit status. */
function inBox(pid: number, ...cmd: string[]): number | null {
  return spawnSync('nsenter', ['-t', String(pid), '-m', '-r', '--', '/bin/busybox', ...cmd], { encoding: 'utf8' }).status;
}

const count = (pid: number) => countOf(pid, '/shared/count');

test('a tree\'s peer groups, slaves of them and unbindable mounts come back as they were, and propagate as they did', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('mntprop-img');
  let restored: number | undefined;
  try {
    const before = mountsOf(box.pid);
    const at = (mp: string) => before.find((l) => l.startsWith(`${mp} `)) ?? '';
    assert.match(at('/shared'), / shared:#1$/, before.join('\n'));
    assert.match(at('/peer'), /^\/peer \/sub .* shared:#1$/, before.join('\n'));
    assert.match(at('/slave'), / shared:#2 master:#1$/, before.join('\n'));
    assert.match(at('/slave-peer'), / shared:#2 master:#1$/, before.join('\n'));
    assert.match(at('/unb'), / unbindable$/, before.join('\n'));
    const atDump = count(box.pid).length; // (the dump ends the tree: counted before)
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    assert.deepEqual(mountsOf(r.pid), before);
    // Propagation works as it did: down from /shared to its slaves, between peers, not up.
    assert.equal(inBox(r.pid, 'mount', '-t', 'tmpfs', 'on-shared', '/shared/x'), 0);
    assert.equal(inBox(r.pid, 'mount', '-t', 'tmpfs', 'on-slave', '/slave/sub'), 0);
    const now = mounts(r.pid);
    const where = (src: string) => now.filter((m) => m.source === src).map((m) => m.mountPoint).sort();
    assert.deepEqual(where('on-shared'), ['/shared/x', '/slave-peer/x', '/slave/x']);
    assert.deepEqual(where('on-slave'), ['/slave-peer/sub', '/slave/sub']);
    assert.notEqual(inBox(r.pid, 'mount', '--bind', '/unb', '/tmp'), 0, 'an unbindable mount was bound');
    assert.equal(fs.readFileSync(`/proc/${r.pid}/root/peer/file`, 'utf8'), 'hello\n');
    // The count goes on from where it was: 1..N, no gap, no repeat.
    assertCountGoesOn(() => count(r.pid), atDump);
    assertNoYardLeft();
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});

test('a mount in a peer group of another mount namespace, or a slave of a peer group the tree does not have, is refused at dump naming it; the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startTiedBox();
  const images = tmpDir('mntprop-img');
  try {
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(/mount \d+ at \/shared .*is in peer group \d+, which mount \d+ at .*outer of mount namespace mnt:\[\d+\] \(pid \d+\) is in too/));
    assert.equal(inBox(box.pid, 'mount', '--make-slave', '/shared'), 0);
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(/mount \d+ at \/shared .*is a slave of peer group \d+, which no mount of the tree is in/));
    assertCountsOn(() => count(box.pid));
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});
