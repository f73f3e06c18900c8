// zdtm inotify01, checked from outside: in a box (`unshare -m -p --fork`, a root bound over itself,
// pivot_root into it), a task watches a tmpfs that only its child's nested mount namespace shows
// (test/workloads/nested-inotify.c). After dump and restore (--root) the watch is on the child's
// tmpfs made again: a file created there is reported, one created in the root's /mnt is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { compileWorkload, tmpDir, waitFor, sleepMs, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { childOf } from './private-proc.js';
import { boxUnavailable, childWhen, cleanUp, makeBoxRoot, spawnBox } from './box-kit.js';

const why = boxUnavailable();

test('an inotify watch on a tmpfs of a nested mount namespace comes back on that tmpfs, made again: it reports what is created there and nothing of the root\'s directory under it', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('inotify-ns');
  const root = makeBoxRoot(dir, ['bin', 'srv', 'mnt', 'old', 'dev', 'proc']);
  fs.copyFileSync(compileWorkload('nested-inotify', ['-static']), path.join(root, 'bin/nested-inotify'));
  const script = `set -e; mknod ${root}/dev/null c 1 3; mount --bind ${root} ${root}; mount -t proc -o nosuid proc ${root}/proc; cd ${root}; pivot_root . old; exec /bin/busybox sh -c '/bin/busybox umount -l /old; exec /bin/nested-inotify </dev/null >/dev/null 2>&1'`;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the watch set', childWhen((c) => fs.existsSync(`/proc/${c}/root/srv/ready`)));
  const events = (pid: number) => {
    try {
      return fs.readFileSync(`/proc/${pid}/root/srv/events`, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const images = tmpDir('inotify-ns-img');
  let restored: number | undefined;
  try {
    const child = waitFor('the child', () => childOf(pid));
    fs.writeFileSync(`/proc/${child}/root/mnt/before`, '');
    waitFor('the event before the dump', () => events(pid).includes('before') || undefined);
    await dump({ pid, imagesDir: images, root });
    waitPid(unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    const c2 = waitFor('the restored child', () => childOf(r.pid));
    assert.notEqual(fs.readlinkSync(`/proc/${c2}/ns/mnt`), fs.readlinkSync(`/proc/${r.pid}/ns/mnt`));
    // The root's /mnt is the directory under the child's tmpfs: a watch there would see this one.
    fs.writeFileSync(`/proc/${r.pid}/root/mnt/not-here`, '');
    fs.writeFileSync(`/proc/${c2}/root/mnt/after`, '');
    waitFor('the event after the restore', () => events(r.pid).includes('after') || undefined);
    sleepMs(100);
    assert.deepEqual(events(r.pid), ['before', 'after']);
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});
