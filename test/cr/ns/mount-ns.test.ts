// A tree with a mount namespace of its own, as a container runtime makes one: `unshare -m -p
// --fork`, a busybox root bound over itself, a tmpfs on /tmp holding files (a directory, a
// symlink, a device node), a bind of a directory of that tmpfs on /mnt, a host directory bound
// read-only on /data (an external mount, named at dump and given at restore), proc on /proc
// (nosuid), sysfs (read-only), a devpts of its own and mqueue, then pivot_root into it. Its shell counts into /tmp/count and holds /tmp/sub/x open.
// After dump and restore (--root, --ext-mount-map) the tree sees the same mounts with the same
// flags, the tmpfs's files, the fd on the same mount, and its count goes on with no gap and no
// repeat. Without --root or the external mount's name the dump is refused naming the mount, the
// tree left running; a restore without the external mount's path fails naming it, leaving no
// process behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { waitPid, setChildSubreaper } from '../../../src/sys/index.js';
import { CriuReqType } from '../../../src/image/gen/stasis/rpc_pb.js';
import { SwrkClient } from '../rpc/client.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { assertNoYardLeft, type Box as KitBox, assertCountGoesOn, assertCountsOn, boxUnavailable, childWhen, cleanUp as cleanUpBox, countOf, makeBoxRoot, refused, spawnBox } from './box-kit.js';

const why = boxUnavailable();

interface Box extends KitBox {
  data: string;
}

function startBox(): Box {
  const dir = tmpDir('mntns');
  const root = makeBoxRoot(dir, ['bin', 'proc', 'sys', 'dev/pts', 'dev/mqueue', 'tmp', 'mnt', 'data', 'old'], ['sh', 'sleep', 'umount']), data = path.join(dir, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'host-file'), 'from the host\n');
  const loop = 'umount -l /old; exec </tmp/null >/tmp/out 2>&1; exec 5</tmp/sub/x; i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.02; done';
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs -o size=1m,mode=755 box-tmp ${root}/tmp
    mkdir ${root}/tmp/sub; echo hello > ${root}/tmp/sub/x; mknod ${root}/tmp/null c 1 3; ln -s sub/x ${root}/tmp/lnk
    mount --bind ${root}/tmp/sub ${root}/mnt
    mount --bind ${data} ${root}/data
    mount -o remount,bind,ro ${root}/data
    mount -t proc -o nosuid proc ${root}/proc
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs ${root}/sys
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts ${root}/dev/pts
    mount -t mqueue -o nodev mqueue ${root}/dev/mqueue
    cd ${root} && pivot_root . old
    exec /bin/sh -c '${loop}'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box counting', childWhen((c) => lines(c).length >= 3 && fs.readlinkSync(`/proc/${c}/fd/5`) === '/tmp/sub/x'));
  return { dir, root, data, unshare, pid };
}

const lines = (pid: number) => countOf(pid, '/tmp/count');

/** What a mount is, leaving out what the kernel numbers anew (ids, devices). */
const mountsOf = (pid: number) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).map((m) => `${m.mountPoint} ${m.root} ${m.fsType} ${m.source} ${m.mountOptions.join(',')} ${m.superOptions.join(',')} ${m.optionalFields.join(' ')}`);

/** Ends the restored tree and the box, and removes their files. */
const cleanUp = (box: Box, images: string, restored?: number) => cleanUpBox(box.unshare, box.dir, images, restored);

test('a tree with a mount namespace of its own comes back with its mounts (root, tmpfs with its files, bind, external, proc), their flags, its fds on them, and its count goes on', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('mntns-img');
  let restored: number | undefined;
  try {
    const before = mountsOf(box.pid);
    assert.equal(before.length, 8, before.join('\n'));
    const d = await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'data']]) });
    const atDump = lines(box.pid).length;
    waitPid(box.unshare);
    verifyImages(images);
    const files = fs.readdirSync(images);
    assert.ok(files.some((f) => /^mountpoints-\d+\.img$/.test(f)), files.join(' '));
    assert.ok(files.some((f) => /^tmpfs-dev-\d+\.tar\.gz\.img$/.test(f)), files.join(' '));
    // The shell, and its sleep unless the dump fell between two of them.
    assert.ok(d.pids.includes(box.pid) && d.pids.length <= 2, JSON.stringify(d.pids));
    const r = await restore({ imagesDir: images, detach: true, root: box.root, extMounts: new Map([['data', box.data]]) });
    restored = r.pid;
    assert.notEqual(fs.readlinkSync(`/proc/${r.pid}/ns/mnt`), fs.readlinkSync('/proc/self/ns/mnt'));
    assert.deepEqual(mountsOf(r.pid), before);
    // The tmpfs's files, the external mount's, and the fd on the tmpfs's mount.
    const tmp = `/proc/${r.pid}/root/tmp`;
    assert.equal(fs.readlinkSync(`${tmp}/lnk`), 'sub/x');
    const dev = fs.statSync(`${tmp}/null`);
    assert.ok(dev.isCharacterDevice() && dev.rdev === 0x103, `/tmp/null: ${dev.rdev}`);
    assert.equal(fs.readFileSync(`/proc/${r.pid}/root/mnt/x`, 'utf8'), 'hello\n');
    assert.equal(fs.readFileSync(`/proc/${r.pid}/root/data/host-file`, 'utf8'), 'from the host\n');
    assert.equal(fs.readlinkSync(`/proc/${r.pid}/fd/5`), '/tmp/sub/x');
    const tmpMount = parseMountinfo(fs.readFileSync(`/proc/${r.pid}/mountinfo`, 'utf8')).find((m) => m.mountPoint === '/tmp')!;
    assert.match(fs.readFileSync(`/proc/${r.pid}/fdinfo/5`, 'utf8'), new RegExp(`^mnt_id:\\s+${tmpMount.mountId}$`, 'm'));
    // The count goes on from where it was: 1..N, no gap, no repeat.
    assertCountGoesOn(() => lines(r.pid), atDump);
    // Nothing of the restore's yard is left behind.
    assertNoYardLeft();
  } finally {
    cleanUp(box, images, restored);
  }
});

test('a mount namespace is refused at dump without --root, or with a mount no plan fits, naming the mount; the tree runs on. A restore without the external mount\'s path fails naming it and leaves nothing', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('mntns-img');
  try {
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, extMounts: new Map([['/data', 'data']]) }), refused(/mount \d+ at \/ .*is the tree's root mount, and no root \(--root, RPC root\) was given/));
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root }), refused(/mount \d+ at \/data .*shows .*data of a filesystem no other mount of the tree shows; give it as an external mount/));
    assertCountsOn(() => lines(box.pid));
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'data']]) });
    waitPid(box.unshare);
    await assert.rejects(restore({ imagesDir: images, detach: true, root: box.root }), (e: unknown) => e instanceof StasisError && /external mount data, and no --ext-mount-map data:PATH/.test(e.message));
    assertNoYardLeft();
    // (This box's loop: other tests' shells count too.)
    const left = spawnSync('pgrep', ['-f', 'echo \\$i >> /tmp/count'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(left, '', `a failed restore left ${left}`);
  } finally {
    cleanUp(box, images);
  }
});

test('over RPC as runc asks (root, ext_mnt), now that its restore\'s rst_sibling and inherit_fd are there: the tree with a mount namespace of its own is dumped and restored by swrk, its count going on', { skip: why, timeout: 60_000 }, async () => {
  setChildSubreaper(); // the tree swrk restores is ours once swrk exits
  const box = startBox();
  const images = tmpDir('mntns-rpc-img');
  const imgFd = fs.openSync(images, 'r');
  let restored: number | undefined;
  try {
    const before = mountsOf(box.pid);
    const d = new SwrkClient();
    const dr = d.call({ type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: box.pid, root: box.root, extMnt: [{ key: '/data', val: 'data' }], logLevel: 4, logFile: 'dump.log' } });
    d.close();
    assert.ok(dr.success, dr.crErrmsg);
    const atDump = lines(box.pid).length;
    waitPid(box.unshare);
    const r = new SwrkClient();
    const rr = r.call({ type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd, root: box.root, extMnt: [{ key: 'data', val: box.data }], logLevel: 4, logFile: 'restore.log' } });
    r.close();
    assert.ok(rr.success, rr.crErrmsg);
    restored = rr.restore!.pid;
    assert.deepEqual(mountsOf(restored), before);
    assertCountGoesOn(() => lines(restored!), atDump);
  } finally {
    fs.closeSync(imgFd);
    cleanUp(box, images, restored);
  }
});

// runc's /dev: a tmpfs with a devpts, a tmpfs (shm) and a host device bound on files of it
// (/dev/null, as runc binds device nodes it may not make). Under its shm mountpoint and under
// a file a bind covers (/dev/over), the tmpfs holds files of its own that only a clone of the
// tmpfs alone shows; /mnt binds one of those hidden directories (bound from the cwd, taken
// before shm covered it). The shell counts into /dev/count and /dev/shm/count.
function startDevBox(opts: { hiddenSocket?: true } = {}): Box {
  const dir = tmpDir('mntns-dev');
  const root = makeBoxRoot(dir, ['bin', 'dev', 'mnt', 'old'], ['sh', 'sleep', 'umount', 'cat']);
  const loop = 'umount -l /old; exec </dev/null >/dev/null 2>&1; i=0; while :; do i=$((i+1)); echo $i >> /dev/count; echo $i >> /dev/shm/count; sleep 0.02; done';
  const dev = `${root}/dev`;
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs -o nosuid,size=1m,mode=755 box-dev ${dev}
    mkdir -m 0700 ${dev}/shm ${dev}/pts
    printf 'under shm\\n' > ${dev}/shm/hidden; mkdir ${dev}/shm/sub; printf 'deeper\\n' > ${dev}/shm/sub/x
    printf 'under a bind\\n' > ${dev}/over; touch ${dev}/null; ln -s /proc/self/fd ${dev}/fd
    ${opts.hiddenSocket ? `${process.execPath} -e "require('net').createServer().listen('${dev}/shm/sub/sock', () => process.exit(0))"` : ''}
    cd ${dev}/shm/sub
    mount -t tmpfs -o nosuid,nodev,size=1m shm ${dev}/shm
    mount --no-canonicalize --bind . ${root}/mnt
    cd /
    printf 'on shm\\n' > ${dev}/shm/top
    mount --bind ${dev}/shm/top ${dev}/over
    mount --bind /dev/null ${dev}/null
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts ${dev}/pts
    cd ${root} && pivot_root . old
    exec /bin/sh -c '${loop}'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box counting', childWhen((c) => countOf(c, '/dev/count').length >= 3 && !mountsOf(c).some((m) => m.startsWith('/old'))));
  return { dir, root, data: '', unshare, pid };
}

/** What `cmd` prints, run by the box's busybox in the mount namespace of `pid`. */
function inBox(pid: number, ...cmd: string[]): string {
  const r = spawnSync('nsenter', ['-t', String(pid), '-m', '--', '/bin/busybox', ...cmd], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('a tmpfs with mounts on it (runc\'s /dev: devpts, shm, a host device bound on /dev/null, a bind over a file) comes back with the files those mounts hide, the mounts on it, and a bind of a directory shm hides', { skip: why, timeout: 60_000 }, async () => {
  const box = startDevBox();
  const images = tmpDir('mntns-img');
  let restored: number | undefined;
  try {
    const before = mountsOf(box.pid);
    assert.equal(before.length, 7, before.join('\n'));
    assert.ok(before.includes('/mnt /shm/sub tmpfs box-dev rw,nosuid,relatime rw,size=1024k,mode=755 '), before.join('\n'));
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/dev/null', 'null']]) });
    waitPid(box.unshare);
    verifyImages(images);
    // The archive of /dev holds what shm and the bind hide, and nothing of shm's own.
    const archive = fs.readdirSync(images).find((f) => /^tmpfs-dev-\d+\.tar\.gz\.img$/.test(f) && spawnSync('tar', ['-tzf', path.join(images, f)], { encoding: 'utf8' }).stdout.includes('./over'))!;
    assert.ok(archive, fs.readdirSync(images).join(' '));
    const listed = spawnSync('tar', ['-tzf', path.join(images, archive)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(listed.filter((f) => f.startsWith('./shm/')), ['./shm/', './shm/hidden', './shm/sub/', './shm/sub/x']);
    assert.ok(listed.includes('./null') && listed.includes('./fd') && listed.includes('./pts/') && !listed.includes('./shm/top') && !listed.includes('./shm/count'), listed.join(' '));
    const r = await restore({ imagesDir: images, detach: true, root: box.root, extMounts: new Map([['null', '/dev/null']]) });
    restored = r.pid;
    assert.deepEqual(mountsOf(r.pid), before);
    // The mounts on the tmpfs hold their own files; the device bound on /dev/null is the host's.
    const dev = `/proc/${r.pid}/root/dev`;
    assert.equal(fs.readFileSync(`${dev}/shm/top`, 'utf8'), 'on shm\n');
    assert.equal(fs.readFileSync(`${dev}/over`, 'utf8'), 'on shm\n');
    const nul = fs.statSync(`${dev}/null`);
    assert.ok(nul.isCharacterDevice() && nul.rdev === fs.statSync('/dev/null').rdev, `/dev/null: ${nul.rdev}`);
    assert.equal(fs.readlinkSync(`${dev}/fd`), '/proc/self/fd');
    assert.equal(fs.readFileSync(`/proc/${r.pid}/root/mnt/x`, 'utf8'), 'deeper\n');
    assert.equal((fs.statSync(`${dev}/pts`).mode & 0o7777).toString(8), '755'); // devpts's root, on the 0700 mountpoint
    // Both counts go on, no gap, no repeat: /dev's from its archive, shm's from its own.
    const counts = (f: string) => fs.readFileSync(`${dev}/${f}`, 'utf8').split('\n').filter(Boolean).map(Number);
    const atRestore = counts('count').length;
    waitFor('the counts to go on', () => counts('count').length > atRestore + 10 && counts('shm/count').length > atRestore + 10);
    for (const f of ['count', 'shm/count']) {
      const n = counts(f);
      assert.deepEqual(n, n.map((_, i) => i + 1), `${f}: ${n.join(' ')}`);
    }
    // What the mounts hide: taken off inside the restored namespace, the tmpfs's own files are there.
    inBox(r.pid, 'umount', '/dev/over');
    assert.equal(inBox(r.pid, 'cat', '/dev/over'), 'under a bind\n');
    inBox(r.pid, 'umount', '-l', '/dev/shm');
    assert.equal(inBox(r.pid, 'cat', '/dev/shm/hidden', '/dev/shm/sub/x'), 'under shm\ndeeper\n');
    assert.equal((fs.statSync(`${dev}/shm`).mode & 0o7777).toString(8), '700');
    assertNoYardLeft();
  } finally {
    cleanUp(box, images, restored);
  }
});

test('a tmpfs that holds a Unix socket file under a mount on it is refused at dump, naming the file; the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startDevBox({ hiddenSocket: true });
  const images = tmpDir('mntns-img');
  try {
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/dev/null', 'null']]) }), refused(/mount \d+ at \/dev \(tmpfs box-dev\) holds a Unix socket file \(\/dev\/shm\/sub\/sock\), under the mount at \/dev\/shm \(a restore would bind it on that mount\), which a tmpfs archive cannot keep/));
    assertCountsOn(() => countOf(box.pid, '/dev/count'));
  } finally {
    cleanUp(box, images);
  }
});

// zdtm mount_paths, harder: a tmpfs mounted on a directory whose name has spaces, a tab, a
// newline and backslashes (mountinfo's \040 \011 \012 \134), holding files whose names have
// the same and bytes that are not UTF-8; /tmp's tmpfs holds such names too.
const ODD = '/tmp/odd \t name\\ with\nnewline\\';
const oddNames = [Buffer.from('new\nline'), Buffer.from('back\\slash \\134'), Buffer.from('tab\there'), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from([0xff, 0xfe, 0x2f])];
const bytes = (...parts: (string | Buffer)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

test('a tmpfs on a mountpoint with spaces, tabs, newlines and backslashes in its name, holding files whose names have those and bytes that are not UTF-8, comes back with every name byte for byte (zdtm mount_paths)', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('mntns-img');
  let restored: number | undefined;
  try {
    inBox(box.pid, 'mkdir', ODD);
    inBox(box.pid, 'mount', '-t', 'tmpfs', 'odd\\src', ODD);
    const here = (pid: number, ...p: (string | Buffer)[]) => bytes(`/proc/${pid}/root`, ...p);
    for (const dir of [ODD, '/tmp/sub']) {
      for (const n of oddNames.slice(0, 4)) fs.writeFileSync(here(box.pid, dir, '/', n), n);
      // A directory that is not UTF-8, with a file in it (0xff 0xfe then '/': the last name's directory).
      fs.mkdirSync(here(box.pid, dir, '/', oddNames[4]!.subarray(0, 2)));
      fs.writeFileSync(here(box.pid, dir, '/', oddNames[4]!, 'inner'), 'inner');
    }
    const before = mountsOf(box.pid);
    assert.ok(before.some((m) => m.startsWith(`${ODD} / tmpfs odd\\src `)), before.join('\n'));
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'data']]) });
    waitPid(box.unshare);
    const r = await restore({ imagesDir: images, detach: true, root: box.root, extMounts: new Map([['data', box.data]]) });
    restored = r.pid;
    assert.deepEqual(mountsOf(r.pid), before);
    for (const dir of [ODD, '/tmp/sub']) {
      const names = fs.readdirSync(here(r.pid, dir), { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
      const want = [...oddNames.slice(0, 4), oddNames[4]!.subarray(0, 2), ...(dir === '/tmp/sub' ? [Buffer.from('x')] : [])].map((b) => b.toString('hex')).sort();
      assert.deepEqual(names, want, dir);
      for (const n of oddNames.slice(0, 4)) assert.deepEqual(fs.readFileSync(here(r.pid, dir, '/', n)), n);
      assert.equal(fs.readFileSync(here(r.pid, dir, '/', oddNames[4]!, 'inner'), 'utf8'), 'inner');
    }
    waitFor('the count to go on', () => lines(r.pid).length > 10);
  } finally {
    cleanUp(box, images, restored);
  }
});

test('a mount whose mountpoint is not UTF-8 is refused at dump, naming it; the tree runs on', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('mntns-img');
  try {
    const r = spawnSync('nsenter', ['-t', String(box.pid), '-m', '--', '/bin/busybox', 'sh', '-c', 'd="$(/bin/busybox printf "/tmp/bad\\377name")"; /bin/busybox mkdir "$d" && /bin/busybox mount -t tmpfs bad "$d"'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await assert.rejects(dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'data']]) }), refused(/mount \d+ at "\/tmp\/bad\ufffdname" \(tmpfs bad\) has a path or source that is not UTF-8/));
    assertCountsOn(() => lines(box.pid));
  } finally {
    cleanUp(box, images);
  }
});

test('a restore whose external mount\'s path is not there fails with a StasisError naming the mount and the path (not Node\'s bare ENOENT from a stat), leaving nothing', { skip: why, timeout: 60_000 }, async () => {
  const box = startBox();
  const images = tmpDir('mntns-img');
  try {
    await dump({ pid: box.pid, imagesDir: images, root: box.root, extMounts: new Map([['/data', 'data']]) });
    waitPid(box.unshare);
    const gone = path.join(box.dir, 'no-such-data');
    await assert.rejects(restore({ imagesDir: images, detach: true, root: box.root, extMounts: new Map([['data', gone]]) }), (e: unknown) => {
      assert.ok(e instanceof StasisError && e.code === 'E_RESTORE_FAILED', String(e));
      assert.match(e.message, /^Cannot restore mnt namespace \d+: \/data \(mount \d+\): looking up .*no-such-data, the path of the external mount data, failed with ENOENT/);
      return true;
    });
    assertNoYardLeft();
    const left = spawnSync('pgrep', ['-f', 'echo \\$i >> /tmp/count'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(left, '', `a failed restore left ${left}`);
  } finally {
    cleanUp(box, images);
  }
});

test('a binfmt_misc with no entries registered comes back mounted, its register and status there (zdtm mountpoints)', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('mntns-binfmt');
  const root = makeBoxRoot(dir, ['bin', 'tmp', 'binfmt', 'old'], ['sh', 'sleep', 'umount']);
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs box-tmp ${root}/tmp
    mknod ${root}/tmp/null c 1 3
    mount -t binfmt_misc none ${root}/binfmt
    cd ${root} && pivot_root . old
    exec /bin/sh -c 'umount -l /old; exec </tmp/null >/tmp/null 2>&1; i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.02; done'
  `;
  const { top: unshare, ready: pid } = spawnBox(dir, script, 'the box counting', childWhen((c) => countOf(c, '/tmp/count').length >= 3));
  const images = tmpDir('mntns-binfmt-img');
  let restored: number | undefined;
  try {
    const before = mountsOf(pid);
    assert.ok(before.some((l) => l.startsWith('/binfmt / binfmt_misc ')), before.join('\n'));
    await dump({ pid, imagesDir: images, root });
    waitPid(unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    assert.deepEqual(mountsOf(r.pid), before);
    assert.ok(fs.existsSync(`/proc/${r.pid}/root/binfmt/register`));
    assert.equal(fs.readFileSync(`/proc/${r.pid}/root/binfmt/status`, 'utf8').trim(), 'enabled');
  } finally {
    cleanUpBox(unshare, dir, images, restored);
  }
});
