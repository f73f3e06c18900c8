// CRIU 4.2's link remaps of a nested mount namespace, restored by stasis (zdtm
// mntns_link_remap, ns flavour, dumped by CRIU): a busybox box whose init starts a child in a
// mount namespace of its own, with a private tmpfs on /mnt; the child holds /mnt/f open at fd 7
// past its first line, links it as /mnt/g and removes /mnt/f (the init leads a session of its
// own, as CRIU wants of a pid namespace's tree). CRIU dumps it with --link-remap:
// its link_remap.N is made on the child's tmpfs, its entry in files.img with no mnt_id, its name
// the child's namespace's (CRIU resolves it through the namespace of the file's own mount; the
// root's namespace has no tmpfs on /mnt). stasis brings fd 7 back deleted, on the child's mount,
// at its offset, the inode of /mnt/g, and the link_remap name gone. A link whose size is not the
// file's (its name another file's) fails the restore, naming it, and leaves nothing.
// Without CRIU's binary, or where boxes cannot run, the tests are skipped with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir, waitFor } from '../harness.js';
import { restore, StasisError } from '../../../src/api/index.js';
import { readImage, writeImage } from '../../../src/image/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { childOf } from '../ns/private-proc.js';
import { assertNoYardLeft, boxUnavailable, cleanUp, makeBoxRoot, nestedBox, spawnBox, type Box, commOf, readlinkOr } from '../ns/box-kit.js';
import { criu, criuWorks } from './criu-tool.js';

const why = criuWorks() || boxUnavailable();

const readlink = readlinkOr;
const comm = commOf;
const fdinfo = (pid: number, fd: number, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1]);

/** The box, its child's fd 7 on /mnt/f (deleted), the file linked as /mnt/g, dumped by CRIU into `images`; the box's directory and child. */
function dumpedByCriu(images: string): Box & { child: number } {
  const dir = tmpDir('criu-lremap');
  const root = makeBoxRoot(dir, ['bin', 'dev', 'proc', 'mnt', 'old'], ['sh', 'sleep', 'umount', 'mount', 'unshare', 'rm', 'ln']);
  fs.writeFileSync(path.join(root, 'bin/child'), 'mount --make-rprivate /\nmount -t tmpfs -o size=1m,mode=755 child-tmp /mnt\nprintf "line1\\nline2\\n" > /mnt/f\nexec 7</mnt/f\nread l <&7\nln /mnt/f /mnt/g\nrm /mnt/f\nexec sleep 1000\n', { mode: 0o755 });
  const { top: unshare, ready: { pid, child } } = spawnBox(dir, nestedBox(root, { setsid: true }), 'the box and its child holding a removed file', (top) => {
    const p = childOf(top);
    const c = p === undefined ? undefined : childOf(p);
    return p !== undefined && c !== undefined && readlink(`/proc/${c}/fd/7`) === '/mnt/f (deleted)' && /\bsleep\b/.test(comm(c)) ? { pid: p, child: c } : undefined;
  });
  try {
    assert.equal(fdinfo(child, 7, 'pos'), 6);
    criu(['dump', '-t', String(pid), '--link-remap'], images, 'dump.log');
    waitPid(unshare);
  } catch (err) {
    cleanUp(unshare, dir, images);
    throw err;
  }
  return { dir, root, unshare, pid, child };
}

/** The remapped file's entry and its link's, in files.img. */
function linkedEntries(images: string) {
  const remaps = readImage(images, 'remap-fpath', undefined);
  assert.equal(remaps.length, 1, JSON.stringify(remaps));
  const files = readImage(images, 'files', undefined);
  const orig = files.find((f) => f.id === remaps[0]!.origId)?.reg, link = files.find((f) => f.id === remaps[0]!.remapId)?.reg;
  assert.ok(orig && link);
  return { files, orig, link };
}

test('a file removed from a nested mount namespace\'s tmpfs and linked there, dumped by CRIU with --link-remap, comes back deleted through the child\'s mount, at its offset, the inode of its other name, CRIU\'s link_remap gone', { skip: why, timeout: 60_000 }, async () => {
  const images = tmpDir('criu-lremap-img');
  const box = dumpedByCriu(images);
  let restored: number | undefined;
  try {
    // CRIU's shape: the link beside the file, named as the child's namespace sees it, with no mount of its own.
    const { orig, link } = linkedEntries(images);
    assert.equal(orig.name, '/mnt/f');
    assert.match(link.name, /^\/mnt\/link_remap\.\d+$/);
    assert.equal(link.mntId, -1);
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    assert.notEqual(fs.readlinkSync(`/proc/${child}/ns/mnt`), fs.readlinkSync(`/proc/${r.pid}/ns/mnt`));
    assert.equal(fs.readlinkSync(`/proc/${child}/fd/7`), '/mnt/f (deleted)');
    assert.equal(fdinfo(child, 7, 'pos'), 6);
    const childTmp = parseMountinfo(fs.readFileSync(`/proc/${child}/mountinfo`, 'utf8')).find((m) => m.mountPoint === '/mnt');
    assert.equal(fdinfo(child, 7, 'mnt_id'), childTmp?.mountId);
    assert.equal(fs.readFileSync(`/proc/${child}/fd/7`, 'utf8'), 'line1\nline2\n');
    const a = fs.statSync(`/proc/${child}/fd/7`), b = fs.statSync(`/proc/${child}/root/mnt/g`);
    assert.deepEqual([a.dev, a.ino, a.nlink], [b.dev, b.ino, 1]);
    assert.deepEqual(fs.readdirSync(`/proc/${child}/root/mnt`), ['g']);
    assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/root/mnt`), []);
    assertNoYardLeft();
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
});

test('a CRIU link_remap of a nested mount namespace that is not the file (its size another) fails the restore naming it and the mount it was looked for through, and leaves no task', { skip: why, timeout: 60_000 }, async () => {
  const images = tmpDir('criu-lremap-img');
  const box = dumpedByCriu(images);
  try {
    const { files, orig } = linkedEntries(images);
    orig.size += 1n;
    writeImage(images, 'files', undefined, files);
    const before = new Set(fs.readdirSync('/proc').filter((f) => /^\d+$/.test(f)));
    await assert.rejects(restore({ imagesDir: images, detach: true, root: box.root, noVerify: true }), (e: unknown) =>
      e instanceof StasisError && new RegExp(`Cannot reopen /mnt/f \\(file ${orig.id}\\): its temporary link /mnt/link_remap\\.\\d+ \\(through mount ${orig.mntId}, the file's own\\) is another file: 12 bytes, not 13`).test(e.message));
    const left = fs.readdirSync('/proc').filter((f) => /^\d+$/.test(f) && !before.has(f) && /\bsleep\b/.test(comm(Number(f))));
    assert.deepEqual(left, []);
    assertNoYardLeft();
  } finally {
    cleanUp(box.unshare, box.dir, images);
  }
});
