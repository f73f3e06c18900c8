import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parseMountinfo } from '../proc/mountinfo.js';
import { mntEntries, mountFlags, notUtf8, planMounts } from './mnt.js';
import { autoExternals, hostPathOf, propagationDiffers } from './mnt-external.js';
import { decodeImage, encodeImage } from '../image/index.js';

// A runc 1.1 busybox container's mountinfo, and the mountpoints image CRIU 4.2 wrote for it
// through `runc --criu criu checkpoint` (decoded by crit), captured together on this machine.
const MOUNTS = parseMountinfo(fs.readFileSync(new URL('../../../src/ns/fixtures/runc-mountinfo.txt', import.meta.url), 'utf8'));
const CRIU = (JSON.parse(fs.readFileSync(new URL('../../../src/ns/fixtures/runc-mountpoints.json', import.meta.url), 'utf8')) as { entries: Record<string, unknown>[] }).entries;

// What runc passed as ext_mnt: each cgroup v1 hierarchy by its own path, the masked paths as /dev/null.
const EXT = new Map<string, string>([
  ...MOUNTS.filter((m) => m.fsType === 'cgroup').map((m) => [m.mountPoint, m.mountPoint] as [string, string]),
  ['/proc/keys', '/dev/null'], ['/proc/timer_list', '/dev/null'],
]);

const dev = (d: string) => {
  const m = /^(\d+):(\d+)$/.exec(d);
  return m ? ((Number(m[1]) << 20) | Number(m[2])) >>> 0 : Number(d);
};

test('mntEntries() writes what CRIU 4.2 wrote for the same runc container, entry by entry and in its order', () => {
  const ours = mntEntries(MOUNTS, EXT);
  assert.equal(ours.length, CRIU.length);
  ours.forEach((e, i) => {
    const c = CRIU[i]!;
    const want = {
      fstype: c.fstype, mntId: c.mnt_id, rootDev: dev(String(c.root_dev)), parentMntId: c.parent_mnt_id, flags: Number(c.flags),
      root: c.root, mountpoint: c.mountpoint, source: c.source, options: c.options, sharedId: c.shared_id, masterId: c.master_id,
      sbFlags: Number(c.sb_flags ?? 0), extKey: c.ext_key ?? '',
    };
    const got = {
      fstype: e.fstype, mntId: e.mntId, rootDev: e.rootDev, parentMntId: e.parentMntId, flags: e.flags, root: e.root, mountpoint: e.mountpoint,
      source: e.source, options: e.options, sharedId: e.sharedId, masterId: e.masterId, sbFlags: e.sbFlags, extKey: e.extKey ?? '',
    };
    assert.deepEqual(got, want, `entry ${i} (${e.mountpoint})`);
  });
});

test('mountFlags() adds strictatime where mountinfo prints no atime mode, as the kernel mounted it', () => {
  assert.equal(mountFlags(['rw', 'nosuid']), 0x1000002);
  assert.equal(mountFlags(['ro', 'relatime']), 0x200001);
  assert.equal(mountFlags(['rw', 'noatime']), 0x400);
});

// The container without the mounts that sit on a tmpfs (/dev/pts, /dev/shm, /dev/mqueue, the cgroups on /sys/fs/cgroup): a tree whose tmpfs hold files only.
const TMPFS_IDS = new Set(MOUNTS.filter((m) => m.fsType === 'tmpfs').map((m) => m.mountId));
const NO_OVER = MOUNTS.filter((m) => !TMPFS_IDS.has(m.parentId));

test('planMounts() plans runc\'s whole container: its /dev tmpfs with /dev/pts, /dev/shm and /dev/mqueue on it, kept from a clone of the tmpfs alone', () => {
  const p = planMounts(MOUNTS, EXT, true, (m) => (m.mountPoint === '/dev' ? 'files' : 'empty'));
  assert.ok('plans' in p, 'refused' in p ? p.refused : '');
  const at = (mp: string) => MOUNTS.find((m) => m.mountPoint === mp)!.mountId;
  assert.deepEqual(p.plans.get(at('/dev')), { how: 'fresh', fsType: 'tmpfs', contents: true });
  assert.deepEqual(p.plans.get(at('/dev/pts')), { how: 'fresh', fsType: 'devpts' });
  assert.deepEqual(p.plans.get(at('/dev/shm')), { how: 'fresh', fsType: 'tmpfs' });
  assert.deepEqual(p.plans.get(at('/dev/mqueue')), { how: 'fresh', fsType: 'mqueue' });
  assert.deepEqual(p.plans.get(at('/sys/fs/cgroup/cpu')), { how: 'external', key: '/sys/fs/cgroup/cpu' });
  assert.equal(p.plans.size, MOUNTS.length);
});

test('planMounts() makes every other mount of the runc container again given its root and runc\'s ext_mnt', () => {
  const p = planMounts(NO_OVER, EXT, true, () => 'empty');
  assert.ok('plans' in p, 'refused' in p ? p.refused : '');
  const how = (mp: string) => p.plans.get(MOUNTS.find((m) => m.mountPoint === mp)!.mountId);
  assert.deepEqual(how('/'), { how: 'root' });
  assert.deepEqual(how('/proc'), { how: 'fresh', fsType: 'proc' });
  assert.deepEqual(how('/sys'), { how: 'fresh', fsType: 'sysfs' });
  assert.deepEqual(how('/proc/keys'), { how: 'external', key: '/dev/null' });
  // /proc/sys is /sys of the container's own proc, mounted read-only over it.
  assert.deepEqual(how('/proc/sys'), { how: 'bind', from: MOUNTS.find((m) => m.mountPoint === '/proc')!.mountId });
});

test('planMounts() keeps the files of a tmpfs (runc\'s /dev with its device nodes) as CRIU\'s archive does', () => {
  const p = planMounts(NO_OVER, EXT, true, (m) => (m.mountPoint === '/dev' ? 'files' : 'empty'));
  assert.ok('plans' in p);
  assert.deepEqual(p.plans.get(93), { how: 'fresh', fsType: 'tmpfs', contents: true });
  assert.deepEqual(p.plans.get(98), { how: 'fresh', fsType: 'tmpfs' });
});

test('planMounts() names the mount it refuses: the root without --root, cgroup v1 without ext_mnt, a tmpfs with a socket file', () => {
  const refused = (r: ReturnType<typeof planMounts>) => ('refused' in r ? r.refused : 'planned');
  assert.match(refused(planMounts(MOUNTS, EXT, false, () => 'empty')), /mount 91 at \/ \(ext4 \/dev\/vda, \/tmp\/mntns-criu\/bundle\/rootfs\) is the tree's root mount, and no root/);
  // (A cgroup v1 hierarchy straight on /sys.)
  const cpu = { ...MOUNTS.find((m) => m.mountPoint === '/sys/fs/cgroup/cpu')!, parentId: 97 };
  assert.match(refused(planMounts([...NO_OVER, cpu], new Map(), true, () => 'empty')), /at \/sys\/fs\/cgroup\/cpu \(cgroup cgroup, .*\) is a cgroup v1 hierarchy shown from one of its cgroups; give it as an external mount/);
  // (The root of a hierarchy is mounted again: zdtm cgroup_stray's name=zdtmtst.)
  const named = { ...cpu, root: '/', mountPoint: '/cg', superOptions: ['rw', 'name=zdtmtst'] };
  const p = planMounts([...NO_OVER, named], new Map(), true, () => 'empty');
  assert.deepEqual('plans' in p && p.plans.get(named.mountId), { how: 'fresh', fsType: 'cgroup' });
  assert.match(refused(planMounts(NO_OVER, EXT, true, (m) => (m.mountPoint === '/dev' ? 'a Unix socket file (/dev/log)' : 'empty'))), /mount 93 at \/dev \(tmpfs tmpfs\) holds a Unix socket file \(\/dev\/log\), which a tmpfs archive cannot keep/);
  const slave = MOUNTS.map((m) => (m.mountPoint === '/proc' ? { ...m, master: 7 } : m));
  assert.match(refused(planMounts(slave, EXT, true, () => 'empty')), /mount 92 at \/proc \(proc proc\) is a slave of peer group 7/);
});

test('CRIU 4.2\'s own mountpoints-13.img of that container decodes to our entries, and our entries encode to its bytes', () => {
  const bytes = new Uint8Array(fs.readFileSync(new URL('../../../src/ns/fixtures/runc-img/mountpoints-13.img', import.meta.url)));
  const theirs = decodeImage('mountpoints', bytes, { compat: false });
  assert.deepEqual(theirs, mntEntries(MOUNTS, EXT));
  assert.deepEqual(encodeImage('mountpoints', mntEntries(MOUNTS, EXT)), bytes);
});

test('notUtf8() names the mount of a mountinfo line with bytes that are not UTF-8, and passes the kernel\'s escapes of space, tab, newline and backslash', () => {
  const ok = Buffer.from('21 1 0:20 / / rw - tmpfs root rw\n70 21 0:42 / /a\\040b\\011c\\012d\\134 rw - tmpfs x\\134y rw\n');
  assert.equal(notUtf8(ok), undefined);
  const bad = Buffer.concat([ok, Buffer.from('71 21 0:43 / /bad'), Buffer.from([0xff]), Buffer.from(' rw - tmpfs bad rw\n')]);
  assert.equal(notUtf8(bad), 'mount 71 at "/bad\ufffd" (tmpfs bad) has a path or source that is not UTF-8, which an image cannot keep');
  assert.equal(parseMountinfo(ok.toString())[1]!.mountPoint, '/a b\tc\nd\\');
});

test('autoExternals() finds the mounts of the tree that show what one of stasis\'s shows, as CRIU\'s mnt[] does, and leaves the others', () => {
  const host = parseMountinfo([
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '90 27 0:50 / /tmp/zdtm_ext.tmp rw,relatime shared:7 - tmpfs src rw',
    '91 27 0:51 / /tmp/file.tmp rw,relatime - tmpfs other rw',
    '92 27 0:52 /sub /tmp/hidden rw,relatime - tmpfs hid rw',
  ].join('\n'));
  const tree = parseMountinfo([
    '200 100 254:0 /root / rw,relatime - ext4 /dev/vda rw',
    '201 200 0:50 /a /dst rw,relatime - tmpfs src rw',
    '202 200 0:50 /a /shared rw,relatime shared:9 - tmpfs src rw',
    '203 200 0:50 /b /slave rw,relatime master:7 - tmpfs src rw',
    '204 200 0:51 /f /file rw,relatime - tmpfs other rw,size=4k',
    '205 200 0:52 / /wide rw,relatime - tmpfs hid rw',
    '206 200 0:22 / /proc rw - proc proc rw',
    '207 200 0:50 / /named rw,relatime - tmpfs src rw',
  ].join('\n'));
  const all = () => true;
  const named = new Map([['/named', 'N']]);
  assert.deepEqual([...autoExternals(tree, host, { sharing: false, masters: false }, named, all)], [[201, '/tmp/zdtm_ext.tmp/a']]);
  assert.deepEqual([...autoExternals(tree, host, { sharing: true, masters: true }, named, all)], [[201, '/tmp/zdtm_ext.tmp/a'], [202, '/tmp/zdtm_ext.tmp/a'], [203, '/tmp/zdtm_ext.tmp/b']]);
  // A host path that leads elsewhere (covered by another mount) is no match.
  assert.deepEqual([...autoExternals(tree, host, { sharing: false, masters: false }, named, (_p, id) => id !== 90)], []);
  assert.equal(hostPathOf(host[3]!, '/sub/x'), '/tmp/hidden/x');
  assert.equal(hostPathOf(host[2]!, '/'), '/tmp/file.tmp');
  assert.equal(hostPathOf(host[3]!, '/sub'), '/tmp/hidden');
});

test('planMounts() takes a slave of a peer group outside the tree as external, and a bind of it with the same master; a slave of no external mount is refused, naming the options', () => {
  const tree = parseMountinfo([
    '200 100 254:0 /root / rw - ext4 /dev/vda rw',
    '201 200 0:50 /a /dst_a rw master:7 - tmpfs src rw',
    '202 200 0:50 /a/x /bind rw master:7 - tmpfs src rw',
  ].join('\n'));
  const p = planMounts(tree, new Map([['/dst_a', 'A']]), true, () => 'empty');
  assert.ok('plans' in p, JSON.stringify(p));
  assert.deepEqual([...p.plans.values()], [{ how: 'root' }, { how: 'external', key: 'A' }, { how: 'bind', from: 201 }]);
  const r = planMounts(tree, new Map(), true, () => 'empty');
  assert.ok('refused' in r && /mount 201 at \/dst_a .* slave of peer group 7, which no mount of the tree is in; give it as an external mount \(--external mnt\[\/dst_a\]:NAME/.test(r.refused), JSON.stringify(r));
});

test('propagationDiffers() names a slave that came back private, and peers that came back in two groups', () => {
  const e = (mntId: number, sharedId: number, masterId: number) => ({ mntId, mountpoint: `/m${mntId}`, sharedId, masterId }) as never;
  const info = (lines: string[]) => lines.join('\n');
  const ok = info(['301 300 0:50 / /a rw master:40 - tmpfs s rw', '302 300 0:50 / /b rw master:40 - tmpfs s rw', '303 300 0:50 / /c rw - tmpfs s rw']);
  const ids = new Map([[1, 301], [2, 302], [3, 303]]);
  assert.equal(propagationDiffers([e(1, 0, 7), e(2, 0, 7), e(3, 0, 0)], ids, ok), undefined);
  assert.match(propagationDiffers([e(1, 0, 7), e(2, 0, 8), e(3, 0, 0)], ids, ok)!, /mount 2 at \/m2 came back a slave of peer group 40, where it was a slave of peer group 8/);
  assert.match(propagationDiffers([e(1, 0, 7), e(2, 0, 7), e(3, 0, 7)], ids, ok)!, /mount 3 at \/m3 came back private, where it was a slave of peer group 7 \(the path it is bound from is in no peer group/);
});

test('planMounts() plans a bind of a pty\'s node of a devpts (zdtm pty-console\'s /dev/console) as a bind of that pty, and refuses another file of a devpts', () => {
  const pts = MOUNTS.find((m) => m.mountPoint === '/dev/pts')!;
  const console = { ...pts, mountId: 9001, mountPoint: '/dev/console', root: '/0' };
  const p = planMounts([...MOUNTS, console], EXT, true, (m) => (m.mountPoint === '/dev' ? 'files' : 'empty'));
  assert.ok('plans' in p, 'refused' in p ? p.refused : '');
  assert.deepEqual(p.plans.get(9001), { how: 'bind', from: pts.mountId, pty: 0 });
  const odd = planMounts([...MOUNTS, { ...console, root: '/x' }], EXT, true, (m) => (m.mountPoint === '/dev' ? 'files' : 'empty'));
  assert.ok('refused' in odd && /mount 9001 at \/dev\/console \(devpts devpts, \/x\) is a bind of \/x of a devpts, which stasis cannot make again/.test(odd.refused), JSON.stringify(odd));
});

test('mntEntries() keeps a bind whose root was removed as CRIU does: its root without mountinfo\'s //deleted, and deleted', () => {
  const [e] = mntEntries(parseMountinfo('71 60 0:50 /test-src//deleted /zdtm/test-dst rw,relatime shared:1 - tmpfs none rw\n'), new Map());
  assert.equal(e!.root, '/test-src');
  assert.equal(e!.deleted, true);
  const [f] = mntEntries(parseMountinfo('72 60 0:50 /test-src /zdtm/test-dst rw,relatime - tmpfs none rw\n'), new Map());
  assert.equal(f!.root, '/test-src');
  assert.ok(!f!.deleted);
});

test('planMounts() mounts a filesystem stasis cannot mount by itself again from a device --external dev[] names, and binds of it from it', () => {
  const tree = parseMountinfo([
    '200 100 254:0 /root / rw - ext4 /dev/vda rw',
    '201 200 7:0 / /data rw - ext4 /dev/loop0 rw',
    '202 200 7:0 /sub /bind rw - ext4 /dev/loop0 rw',
  ].join('\n'));
  const key = (m: { dev: { major: number; minor: number } }) => (m.dev.major === 7 ? 'loop' : undefined);
  const p = planMounts(tree, new Map(), true, () => 'empty', false, key);
  assert.ok('plans' in p, JSON.stringify(p));
  assert.deepEqual([...p.plans.values()], [{ how: 'root' }, { how: 'device', key: 'loop' }, { how: 'bind', from: 201 }]);
  assert.ok('refused' in planMounts(tree, new Map(), true, () => 'empty'));
});
