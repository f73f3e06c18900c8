import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMountinfo } from '../proc/mountinfo.js';
import { joinedHere, planPeers, planSharing, slavedHere } from './mnt-sharing.js';
import { mountName } from './mnt.js';

// The mounts of test/cr/ns/mount-propagation.test.ts's box, as its mountinfo showed them.
const BOX = `68 66 254:0 /tmp/box/root / rw,relatime - ext4 /dev/vda rw
69 68 0:60 / /shared rw,relatime shared:1 - tmpfs box-shared rw,size=1024k,mode=755
70 68 0:60 /sub /peer rw,relatime shared:1 - tmpfs box-shared rw,size=1024k,mode=755
71 68 0:60 / /slave rw,relatime shared:2 master:1 - tmpfs box-shared rw,size=1024k,mode=755
72 68 0:60 / /slave-peer rw,relatime shared:2 master:1 - tmpfs box-shared rw,size=1024k,mode=755
73 68 0:61 / /unb rw,relatime unbindable - tmpfs box-unb rw,size=1024k
`;

test('planSharing() makes each group from its widest mount, a slave group after its master\'s, and keeps the unbindable mount', () => {
  const s = planSharing(parseMountinfo(BOX), mountName);
  assert.ok('groups' in s, 'refused' in s ? s.refused : '');
  assert.deepEqual(s.groups, [
    { shared: 1, master: 0, first: 69, others: [70] },
    { shared: 2, master: 1, first: 71, others: [72], parent: 0 },
  ]);
  assert.deepEqual(s.unbindable, [73]);
});

test('planSharing() puts a master\'s group first even where mountinfo shows its slave first', () => {
  const lines = BOX.trim().split('\n');
  const s = planSharing(parseMountinfo([lines[0], lines[3], lines[1]].join('\n')), mountName);
  assert.ok('groups' in s);
  assert.deepEqual(s.groups.map((g) => [g.shared, g.parent]), [[1, undefined], [2, 0]]);
});

test('planSharing() leaves a slave of a peer group the tree has no mount of (the host\'s) without a master group to join, shared again among its peers', () => {
  const s = planSharing(parseMountinfo(BOX.replace(/shared:1/g, 'shared:7')), mountName);
  assert.ok('groups' in s, 'refused' in s ? s.refused : '');
  assert.deepEqual(s.groups.find((g) => g.shared === 2), { shared: 2, master: 1, first: 71, others: [72] });
});

test('planSharing() refuses a slave whose dominant peer group is another (propagate_from) and peers no one of whose roots holds the others\'', () => {
  const from = planSharing(parseMountinfo('69 68 0:60 / /s rw master:4 propagate_from:2 - tmpfs t rw\n'), mountName);
  assert.ok('refused' in from && /outside the tree/.test(from.refused));
  const apart = planSharing(parseMountinfo('69 68 0:60 /a /a rw shared:3 - tmpfs t rw\n70 68 0:60 /b /b rw shared:3 - tmpfs t rw\n'), mountName);
  assert.ok('refused' in apart && /no mount whose root holds the others'/.test(apart.refused), 'refused' in apart ? apart.refused : '');
});

// zdtm mntns_shared_bind's namespaces: the child's unshared from the root's, peers of its mounts.
const PARENT = `91 68 254:0 /tmp/w/root / rw,relatime shared:1 - ext4 /dev/vda rw
76 91 254:0 /tmp/w/root/d/test /d/test.bind rw,relatime shared:1 - ext4 /dev/vda rw
77 91 0:45 / /d/test/sub rw,relatime shared:2 - tmpfs test rw
92 91 0:42 / /proc rw,relatime - proc proc rw
`;
const CHILD = `71 70 254:0 /tmp/w/root / rw,relatime shared:1 - ext4 /dev/vda rw
75 71 254:0 /tmp/w/root/d/test /d/test.bind rw,relatime shared:1 - ext4 /dev/vda rw
78 71 0:45 / /d/test/sub rw,relatime shared:2 - tmpfs test rw
79 75 0:45 / /d/test.bind/sub rw,relatime shared:2 - tmpfs test rw
`;

test('planPeers() makes a group that spans namespaces in the root\'s, from its widest mount, and joins the other namespace\'s mounts to it', () => {
  const cross = planPeers([{ ns: 'root', mounts: parseMountinfo(PARENT) }, { ns: 'child', mounts: parseMountinfo(CHILD) }], mountName);
  assert.ok(Array.isArray(cross), 'refused' in cross ? cross.refused : '');
  assert.deepEqual(cross, [
    { shared: 1, ns: 'root', first: 91, joins: [{ ns: 'child', mntId: 71 }, { ns: 'child', mntId: 75 }], slaves: [] },
    { shared: 2, ns: 'root', first: 77, joins: [{ ns: 'child', mntId: 78 }, { ns: 'child', mntId: 79 }], slaves: [] },
  ]);
  assert.deepEqual(joinedHere(cross, 'child'), new Set([1, 2]));
  assert.deepEqual(joinedHere(cross, 'root'), new Set());
  // The child's own planning leaves out what it is joined to.
  const s = planSharing(parseMountinfo(CHILD), mountName, joinedHere(cross, 'child'));
  assert.ok('groups' in s);
  assert.deepEqual(s.groups, []);
});

test('planPeers() makes a slave of another namespace\'s peer group from that group\'s first, a shared one the first of its own group there, and a group across namespaces a slave where its master is made', () => {
  const parent = parseMountinfo(PARENT);
  const slave = planPeers([{ ns: 'root', mounts: parent }, { ns: 'child', mounts: parseMountinfo('71 70 254:0 /tmp/w/root / rw master:1 - ext4 /dev/vda rw\n') }], mountName);
  assert.ok(Array.isArray(slave), 'refused' in slave ? slave.refused : '');
  assert.deepEqual(slave, [{ shared: 1, ns: 'root', first: 91, joins: [], slaves: [{ ns: 'child', mntId: 71 }] }]);
  assert.deepEqual(slavedHere(slave, 'child'), new Set([71]));
  const both = planPeers([{ ns: 'root', mounts: parent }, { ns: 'child', mounts: parseMountinfo('71 70 254:0 /tmp/w/root / rw shared:5 master:1 - ext4 /dev/vda rw\n72 71 254:0 /tmp/w/root/d /d rw shared:5 master:1 - ext4 /dev/vda rw\n') }], mountName);
  assert.ok(Array.isArray(both), 'refused' in both ? both.refused : '');
  assert.deepEqual(both, [{ shared: 1, ns: 'root', first: 91, joins: [], slaves: [{ ns: 'child', mntId: 71, shared: 5, peers: [72] }] }]);
  assert.deepEqual(joinedHere(both, 'child'), new Set([5]));
  // The child's peers of group 2 get its master (1, made in the root's namespace) with the group.
  const mastered = planPeers([{ ns: 'root', mounts: parseMountinfo(PARENT.replace('shared:2 -', 'shared:2 master:1 -')) }, { ns: 'child', mounts: parseMountinfo(CHILD.replace(/shared:2 -/g, 'shared:2 master:1 -')) }], mountName);
  assert.ok(Array.isArray(mastered), 'refused' in mastered ? mastered.refused : '');
  assert.deepEqual(mastered.map((g) => [g.shared, g.joins.length, g.slaves.length]), [[1, 2, 0], [2, 2, 0]]);
  const apart = planPeers([{ ns: 'root', mounts: parent }, { ns: 'child', mounts: parseMountinfo(CHILD.replace('shared:2 -', 'shared:2 master:9 -')) }], mountName);
  assert.ok('refused' in apart && /slaves of different peer groups/.test(apart.refused), 'refused' in apart ? apart.refused : '');
});
