// zdtm fanotify00 in its ns flavour, checked from outside: in a box (`unshare -m -p --fork`, a
// root bound over itself, pivot_root into it), a fanotify group marks a tmpfs mounted in the
// box (test/workloads/box-fanotify.c) and a file of the box's root. After dump and restore
// (--root) the marks are on the tmpfs made again and on the file: an open there and a write to
// the file are reported, an open elsewhere is not, and the marks read as before in fdinfo. A
// mark on a mount another one covers is refused, the box running on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { compileWorkload, tmpDir, waitFor, sleepMs, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { boxUnavailable, childWhen, cleanUp, makeBoxRoot, refused, spawnBox } from './box-kit.js';

const why = boxUnavailable();

/** The box running box-fanotify (with `arg`) in `dir`: its unshare and its tree's root. */
function startBox(dir: string, arg = ''): { unshare: number; pid: number; root: string } {
  const root = makeBoxRoot(dir, ['bin', 'srv', 'mnt', 'old', 'dev', 'proc']);
  fs.copyFileSync(compileWorkload('box-fanotify', ['-static']), path.join(root, 'bin/box-fanotify'));
  const script = `set -e; mknod ${root}/dev/null c 1 3; mount --bind ${root} ${root}; mount -t proc -o nosuid proc ${root}/proc; cd ${root}; pivot_root . old; exec /bin/busybox sh -c '/bin/busybox umount -l /old; exec /bin/box-fanotify ${arg} </dev/null >/dev/null 2>&1'`;
  const { top, ready } = spawnBox(dir, script, 'the marks set', childWhen((c) => fs.existsSync(`/proc/${c}/root/srv/ready`)));
  return { unshare: top, pid: ready, root };
}

const events = (pid: number): string[] => {
  try {
    return fs.readFileSync(`/proc/${pid}/root/srv/events`, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

/** The group's marks in fdinfo, without what changes with the objects made again (inode numbers, handles, mount ids). */
const marks = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/fdinfo/10`, 'utf8').split('\n')
  .filter((l) => l.startsWith('fanotify '))
  .map((l) => l.replace(/ino:\S+ sdev:\S+ /, '').replace(/ fhandle-bytes:.*$/, '').replace(/mnt_id:\S+ /, ''));

test('a fanotify group in a mount namespace of the tree\'s own comes back marking the tmpfs made again and the file: it reports an open there and a write to the file, nothing else', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('fanotify-ns');
  const { unshare, pid, root } = startBox(dir);
  const images = tmpDir('fanotify-ns-img');
  let restored: number | undefined;
  try {
    const before = marks(pid);
    assert.equal(before.length, 3, `flags and two marks: ${before.join(' | ')}`);
    await dump({ pid, imagesDir: images, root });
    waitPid(unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    assert.deepEqual(marks(r.pid), before);
    // The root's /srv is not on the marked tmpfs: opening a file there is not reported.
    fs.writeFileSync(`/proc/${r.pid}/root/srv/elsewhere`, '');
    fs.writeFileSync(`/proc/${r.pid}/root/mnt/after`, 'x'); // an open (reported) and a write (ignored)
    fs.appendFileSync(`/proc/${r.pid}/root/srv/watched`, 'x'); // a write (reported)
    waitFor('the events after the restore', () => events(r.pid).length >= 2 || undefined);
    sleepMs(100);
    const FAN_MODIFY = 0x2, FAN_OPEN = 0x20;
    assert.deepEqual(events(r.pid), [`${FAN_OPEN.toString(16)} /mnt/after`, `${FAN_MODIFY.toString(16)} /srv/watched`]);
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});

test('a fanotify mark on a mount that another mount covers fails the dump, the box running on', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('fanotify-ns-covered');
  const { unshare, pid, root } = startBox(dir, 'covered');
  const images = tmpDir('fanotify-ns-covered-img');
  try {
    await assert.rejects(dump({ pid, imagesDir: images, root }), refused(/fanotify fd 10 of pid \d+: it marks mount \d+ at \/mnt, which mount \d+ covers/));
    fs.appendFileSync(`/proc/${pid}/root/srv/watched`, 'x');
    waitFor('the event after the refused dump', () => events(pid).length >= 1 || undefined);
    assert.deepEqual(events(pid), ['2 /srv/watched']);
  } finally {
    cleanUp(unshare, dir, images);
  }
});
