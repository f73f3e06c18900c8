import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMountinfo } from './mountinfo.js';
import { ProcFormatError } from './proc-format-error.js';

// From Linux 6.18: the root namespace, then a namespace with shared and slave mounts.
const MOUNTINFO = `22 27 0:21 / /proc rw,relatime - proc proc rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
63 43 254:0 /tmp /tmp rw,relatime shared:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
64 63 0:39 / /tmp/procsamp/mnt\\040with\\040space rw,relatime shared:2 - tmpfs my\\040src rw
65 63 0:39 / /tmp/procsamp/m2 rw,relatime master:2 - tmpfs my\\040src rw
`;

test('parseMountinfo() reads every field of a mount', () => {
  assert.deepEqual(parseMountinfo(MOUNTINFO)[1], {
    mountId: 24,
    parentId: 27,
    dev: { major: 0, minor: 6 },
    root: '/',
    mountPoint: '/dev',
    mountOptions: ['rw', 'relatime'],
    optionalFields: [],
    unbindable: false,
    fsType: 'devtmpfs',
    source: 'devtmpfs',
    superOptions: ['rw', 'size=12334492k', 'nr_inodes=3083623', 'mode=755'],
  });
});

test('parseMountinfo() reads the root of a bind mount and a decimal device', () => {
  const m = parseMountinfo(MOUNTINFO)[3];
  assert.deepEqual([m?.root, m?.mountPoint, m?.dev, m?.shared], ['/tmp', '/tmp', { major: 254, minor: 0 }, 1]);
});

test('parseMountinfo() unescapes spaces in the mount point and the source', () => {
  const m = parseMountinfo(MOUNTINFO)[4];
  assert.equal(m?.mountPoint, '/tmp/procsamp/mnt with space');
  assert.equal(m?.source, 'my src');
});

test('parseMountinfo() reads the propagation of shared, slave and unbindable mounts', () => {
  const [, , , , shared, slave] = parseMountinfo(MOUNTINFO);
  assert.deepEqual([shared?.shared, shared?.master], [2, undefined]);
  assert.deepEqual([slave?.shared, slave?.master], [undefined, 2]);
  const [both] = parseMountinfo('70 63 0:40 / /a rw shared:5 master:2 propagate_from:1 - tmpfs none rw\n');
  assert.deepEqual([both?.optionalFields, both?.shared, both?.master, both?.propagateFrom], [['shared:5', 'master:2', 'propagate_from:1'], 5, 2, 1]);
  const [unbindable] = parseMountinfo('71 63 0:41 / /b rw unbindable - tmpfs none rw\n');
  assert.equal(unbindable?.unbindable, true);
});

test('parseMountinfo() unescapes a comma inside a superblock option', () => {
  const [m] = parseMountinfo('80 27 0:50 / /merged rw - fuse.sshfs me@host:/a\\134b rw,lowerdir=/l\\054x,user_id=0\n');
  assert.equal(m?.fsType, 'fuse.sshfs');
  assert.equal(m?.source, 'me@host:/a\\b');
  assert.deepEqual(m?.superOptions, ['rw', 'lowerdir=/l,x', 'user_id=0']);
});

test('parseMountinfo() of an empty file is an empty list', () => {
  assert.deepEqual(parseMountinfo(''), []);
});

test('parseMountinfo() refuses a line without the separator', () => {
  assert.throws(() => parseMountinfo('22 27 0:21 / /proc rw,relatime proc proc rw\n'), ProcFormatError);
});
