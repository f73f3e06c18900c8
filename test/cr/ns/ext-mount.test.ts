// External mounts given back from another host path (CRIU's --external mnt[MOUNTPOINT]:NAME
// at dump, mnt[NAME]:PATH at restore): a tree in a mount namespace of its own (`unshare -m -p
// --fork`, a busybox root bound over itself, pivot_root) has a host directory bound on /data,
// and a host file bound over /etc/conf; its shell copies what it reads through them into a log
// of its root, over and over. The dump names both mounts; the restore maps them to another
// directory and another file: the restored tree reads the new ones (its log shows the new
// text), the mounts come back private as they were, and the old host paths are not touched.
// With --ext-mount-map auto (--external mnt[]) the same mounts are found without names, and a
// restore without auto is refused, naming the mount and the option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir, waitFor } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { readImage } from '../../../src/image/index.js';
import { type Box, boxUnavailable, childWhen, cleanUp, makeBoxRoot, refused, spawnBox } from './box-kit.js';

const why = boxUnavailable();

/** The box, its /data bound from `data` and its /etc/conf from `conf`. */
function startBox(dir: string, data: string, conf: string): Box {
  const root = makeBoxRoot(dir, ['bin', 'proc', 'data', 'etc', 'old', 'log'], ['sh', 'sleep', 'umount', 'cat']);
  fs.writeFileSync(path.join(root, 'etc/conf'), 'the root\'s own\n');
  fs.writeFileSync(path.join(root, 'log/in'), '');
  const loop = 'umount -l /old; exec </log/in >/log/out 2>&1; while :; do cat /data/file /etc/conf >> /log/seen; sleep 0.02; done';
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount --bind ${data} ${root}/data
    mount --bind ${conf} ${root}/etc/conf
    mount -t proc proc ${root}/proc
    cd ${root} && pivot_root . old
    exec /bin/sh -c '${loop}'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box reading', childWhen(() => seen(root).length >= 4));
  return { dir, root, unshare, pid };
}

function seen(root: string): string[] {
  try {
    return fs.readFileSync(path.join(root, 'log/seen'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

const mountAt = (pid: number, at: string) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).find((m) => m.mountPoint === at);

/** The entries of the dump's mountpoints image. */
const mountEntries = (images: string) => readImage(images, 'mountpoints', Number(/^mountpoints-(\d+)\.img$/.exec(fs.readdirSync(images).find((f) => f.startsWith('mountpoints-'))!)![1]));

/** Two host directories with a file, and two host files, of different texts. */
function hostFiles(dir: string) {
  const f = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  for (const d of ['data-a', 'data-b']) fs.mkdirSync(path.join(dir, d));
  f('data-a/file', 'old data\n');
  f('data-b/file', 'new data\n');
  return { dataA: path.join(dir, 'data-a'), dataB: path.join(dir, 'data-b'), confA: f('conf-a', 'old conf\n'), confB: f('conf-b', 'new conf\n') };
}

/**
 * The box of the peer-group tests: `data` bound on /data, made shared in a peer group of its
 * own and bound on /peer (then made a slave of it with `slave`); its shell writes a line a tick.
 */
function peerBox(dir: string, data: string, slave: boolean): Box {
  const root = makeBoxRoot(dir, ['bin', 'data', 'peer', 'old', 'log'], ['sh', 'sleep', 'umount', 'mount']);
  fs.writeFileSync(path.join(root, 'log/in'), '');
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount --bind ${data} ${root}/data
    mount --make-private ${root}/data
    mount --make-shared ${root}/data
    mount --bind ${root}/data ${root}/peer
    ${slave ? `mount --make-slave ${root}/peer` : ''}
    cd ${root} && pivot_root . old
    exec /bin/sh -c 'umount -l /old; exec </log/in >/log/out 2>&1; while :; do echo x >> /log/seen; sleep 0.02; done'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box running', childWhen(() => seen(root).length >= 3));
  return { dir, root, unshare, pid };
}

/** Runs busybox `cmd` in the mount namespace and root of `pid`. */
const inBox = (pid: number, ...cmd: string[]) => spawnSync('nsenter', ['-t', String(pid), '-m', '-r', '--', '/bin/busybox', ...cmd], { encoding: 'utf8' });

test('external mounts named at dump are bound at restore from the host paths the restore maps them to: the tree reads the new directory and file through them', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('extmnt');
  const images = tmpDir('extmnt-img');
  const h = hostFiles(dir);
  const box = startBox(dir, h.dataA, h.confA);
  let restored: number | undefined;
  try {
    assert.deepEqual(seen(box.root).slice(0, 2), ['old data', 'old conf']);
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'DATA'], ['/etc/conf', 'CONF']]) });
    waitPid(box.unshare);
    const entries = mountEntries(images);
    assert.deepEqual(entries.filter((e) => e.extKey).map((e) => `${e.mountpoint}=${e.extKey}`).sort(), ['/data=DATA', '/etc/conf=CONF']);
    const atDump = seen(box.root).length;
    const r = await restore({ imagesDir: images, detach: true, root: box.root, extMounts: new Map([['DATA', h.dataB], ['CONF', h.confB]]) });
    restored = r.pid;
    // What the tree reads after the restore is the new directory's file and the new file.
    waitFor('the tree to read on', () => seen(box.root).length > atDump + 6);
    const after = seen(box.root).slice(atDump);
    assert.deepEqual(after.slice(0, 2), ['new data', 'new conf'], after.join(' | '));
    assert.ok(after.every((l) => l === 'new data' || l === 'new conf'), after.join(' | '));
    assert.equal(fs.readFileSync(`/proc/${r.pid}/root/data/file`, 'utf8'), 'new data\n');
    // The mounts are private, as they were, and their roots the new host paths'.
    for (const at of ['/data', '/etc/conf']) {
      const m = mountAt(r.pid, at)!;
      assert.ok(m, at);
      assert.equal(m.shared, undefined, at);
      assert.equal(m.master, undefined, at);
    }
    assert.equal(mountAt(r.pid, '/data')!.root, path.resolve(h.dataB));
    // The old paths are as they were.
    assert.equal(fs.readFileSync(path.join(h.dataA, 'file'), 'utf8'), 'old data\n');
    assert.equal(fs.readFileSync(h.confA, 'utf8'), 'old conf\n');
  } finally {
    cleanUp(box.unshare, dir, images, restored);
  }
});

test('with --ext-mount-map auto the same mounts are found without names and bound again from where the dump saw them; a restore without auto is refused naming the mount', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('extmnt-auto');
  const images = tmpDir('extmnt-auto-img');
  const h = hostFiles(dir);
  const box = startBox(dir, h.dataA, h.confA);
  let restored: number | undefined;
  try {
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extAuto: { sharing: false, masters: false } });
    waitPid(box.unshare);
    const entries = mountEntries(images);
    // As CRIU writes them: the autodetected name, and the host path as the source.
    assert.deepEqual(entries.filter((e) => e.extKey).map((e) => `${e.mountpoint}=${e.extKey}@${e.source}`).sort(), [`/data=CRIU:AUTOGENERATED@${h.dataA}`, `/etc/conf=CRIU:AUTOGENERATED@${h.confA}`]);
    await assert.rejects(restore({ imagesDir: images, detach: true, root: box.root }), (e: unknown) => e instanceof StasisError && /mount \d+ at \/(data|etc\/conf) is the external mount CRIU:AUTOGENERATED, and no --ext-mount-map auto/.test(e.message));
    const atDump = seen(box.root).length;
    const r = await restore({ imagesDir: images, detach: true, root: box.root, extAuto: true });
    restored = r.pid;
    waitFor('the tree to read on', () => seen(box.root).length > atDump + 4);
    assert.deepEqual(seen(box.root).slice(atDump, atDump + 2), ['old data', 'old conf']);
  } finally {
    cleanUp(box.unshare, dir, images, restored);
  }
});

test('an external mount made shared in the tree (a peer group of its own) and bound on /peer comes back so: a mount on /data/sub appears on /peer/sub, and no host mount is in the group (zdtm mnt_ext_sharing)', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('extmnt-shared');
  const images = tmpDir('extmnt-shared-img');
  const h = hostFiles(dir);
  fs.mkdirSync(path.join(h.dataA, 'sub'));
  const { root, unshare, pid } = peerBox(dir, h.dataA, false);
  const hostGroups = () => new Set(parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).flatMap((m) => (m.shared !== undefined ? [m.shared] : [])));
  let restored: number | undefined;
  try {
    const group = (p: number) => [mountAt(p, '/data')?.shared, mountAt(p, '/peer')?.shared];
    const [d, q] = group(pid);
    assert.ok(d !== undefined && d === q && !hostGroups().has(d), `/data, /peer: ${group(pid).join(', ')}`);
    await dump({ pid, imagesDir: images, root, extMounts: new Map([['/data', 'DATA']]) });
    waitPid(unshare);
    const r = await restore({ imagesDir: images, detach: true, root, extMounts: new Map([['DATA', h.dataA]]) });
    restored = r.pid;
    const [d2, q2] = group(r.pid);
    assert.ok(d2 !== undefined && d2 === q2 && !hostGroups().has(d2), `/data, /peer after restore: ${group(r.pid).join(', ')}`);
    assert.equal(inBox(r.pid, 'mount', '-t', 'tmpfs', 'from-data', '/data/sub').status, 0);
    assert.equal(mountAt(r.pid, '/peer/sub')?.source, 'from-data', 'a mount on /data/sub did not reach /peer/sub');
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});

test('an external mount that is a slave of a peer group of the tree (a bind of another external mount made shared, then made a slave) comes back its slave: a mount on /data/sub reaches /peer/sub, one on /peer/own does not reach /data (zdtm mnt_ext_auto)', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('extmnt-slave');
  const images = tmpDir('extmnt-slave-img');
  const h = hostFiles(dir);
  for (const d of ['sub', 'own']) fs.mkdirSync(path.join(h.dataA, d));
  const { root, unshare, pid } = peerBox(dir, h.dataA, true);
  let restored: number | undefined;
  try {
    const ok = (p: number) => { const d = mountAt(p, '/data'), q = mountAt(p, '/peer'); return d?.shared !== undefined && q?.master === d.shared && q.shared === undefined; };
    assert.ok(ok(pid), fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
    await dump({ pid, imagesDir: images, root, extMounts: new Map([['/data', 'DATA'], ['/peer', 'PEER']]) });
    waitPid(unshare);
    const r = await restore({ imagesDir: images, detach: true, root, extMounts: new Map([['DATA', h.dataA], ['PEER', h.dataA]]) });
    restored = r.pid;
    assert.ok(ok(r.pid), fs.readFileSync(`/proc/${r.pid}/mountinfo`, 'utf8'));
    assert.equal(inBox(r.pid, 'mount', '-t', 'tmpfs', 'from-data', '/data/sub').status, 0);
    assert.equal(inBox(r.pid, 'mount', '-t', 'tmpfs', 'from-peer', '/peer/own').status, 0);
    const mounts = parseMountinfo(fs.readFileSync(`/proc/${r.pid}/mountinfo`, 'utf8'));
    assert.ok(mounts.some((m) => m.mountPoint === '/peer/sub' && m.source === 'from-data'), 'a mount on /data/sub did not reach /peer/sub');
    assert.ok(!mounts.some((m) => m.mountPoint === '/data/own'), 'a mount on the slave /peer/own reached /data');
  } finally {
    cleanUp(unshare, dir, images, restored);
  }
});

/** A box whose /data has `lower` bound on it and `upper` bound over that, the upper made shared and bound on /peer; its shell reads /data/file over and over. */
function stackedBox(dir: string, lower: string, upper: string): Box {
  const root = makeBoxRoot(dir, ['bin', 'data', 'peer', 'old', 'log'], ['sh', 'sleep', 'umount', 'cat']);
  fs.writeFileSync(path.join(root, 'log/in'), '');
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount --bind ${lower} ${root}/data
    mount --bind ${upper} ${root}/data
    mount --make-shared ${root}/data
    mount --bind ${root}/data ${root}/peer
    cd ${root} && pivot_root . old
    exec /bin/sh -c 'umount -l /old; exec </log/in >/log/out 2>&1; while :; do cat /data/file >> /log/seen; sleep 0.02; done'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box reading', childWhen(() => seen(root).length >= 3));
  return { dir, root, unshare, pid };
}

test('external mounts of one host directory stacked at one mountpoint come back stacked, both bound from the path their name is given, the upper shared with /peer and the lower private', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('extmnt-stack');
  const images = tmpDir('extmnt-stack-img');
  const h = hostFiles(dir);
  const box = stackedBox(dir, h.dataA, h.dataA);
  let restored: number | undefined;
  try {
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'DATA']]) });
    waitPid(box.unshare);
    assert.deepEqual(mountEntries(images).filter((e) => e.extKey).map((e) => `${e.mountpoint}=${e.extKey}`), ['/data=DATA', '/data=DATA']);
    const atDump = seen(box.root).length;
    const r = await restore({ imagesDir: images, detach: true, root: box.root, extMounts: new Map([['DATA', h.dataB]]) });
    restored = r.pid;
    waitFor('the tree to read on', () => seen(box.root).length > atDump + 4);
    assert.ok(seen(box.root).slice(atDump).every((l) => l === 'new data'), seen(box.root).slice(atDump).join(' | '));
    const mounts = parseMountinfo(fs.readFileSync(`/proc/${r.pid}/mountinfo`, 'utf8'));
    const at = mounts.filter((m) => m.mountPoint === '/data'), peer = mountAt(r.pid, '/peer');
    const info = mounts.map((m) => `${m.mountId} ${m.parentId} ${m.root} ${m.mountPoint} ${m.shared ?? '-'}`).join('\n');
    assert.equal(at.length, 2, info);
    const [lower, upper] = at[0]!.parentId === at[1]!.mountId ? [at[1]!, at[0]!] : [at[0]!, at[1]!];
    assert.equal(upper.parentId, lower.mountId, info);
    for (const m of at) assert.equal(m.root, path.resolve(h.dataB), info);
    assert.equal(lower.shared, undefined, info);
    assert.ok(upper.shared !== undefined && peer?.shared === upper.shared, info);
  } finally {
    cleanUp(box.unshare, dir, images, restored);
  }
});

test('external mounts of two host directories stacked at one mountpoint, which one name would bind from one path, are refused at dump naming both, and the tree reads on', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('extmnt-stack2');
  const images = tmpDir('extmnt-stack2-img');
  const h = hostFiles(dir);
  const box = stackedBox(dir, h.dataA, h.dataB);
  try {
    assert.equal(seen(box.root)[0], 'new data');
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'DATA']]) }),
      refused(new RegExp(`mount \\d+ at /data \\(ext4 \\S+, ${h.dataA}\\) and mount \\d+ at /data \\(ext4 \\S+, ${h.dataB}\\) are stacked and show different files`)));
    const n = seen(box.root).length;
    waitFor('the tree to read on after the refused dump', () => seen(box.root).length > n + 2);
  } finally {
    cleanUp(box.unshare, dir, images);
  }
});
