import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIdMap, innerIds, hostIds } from './user.js';
import { StasisError } from '../errors.js';

const maps = {
  uidMap: parseIdMap('         0     100000       1000\n      1000     200000         10\n'),
  gidMap: parseIdMap('0 300000 5\n'),
};

test('parseIdMap() reads every line of /proc/PID/uid_map as it pads them', () => {
  assert.deepEqual(maps.uidMap, [{ first: 0, lowerFirst: 100000, count: 1000 }, { first: 1000, lowerFirst: 200000, count: 10 }]);
  assert.deepEqual(parseIdMap(''), []);
});

test('innerIds() turns stasis\'s ids into the namespace\'s through each range, and hostIds() back', () => {
  const inner = innerIds(maps), host = hostIds(maps);
  assert.equal(inner.uid(100000), 0);
  assert.equal(inner.uid(100999), 999);
  assert.equal(inner.uid(200009), 1009);
  assert.equal(inner.gid(300004), 4);
  for (const u of [0, 999, 1000, 1009]) assert.equal(inner.uid(host.uid(u)), u);
});

test('an id outside every range is refused, not mapped to the overflow id', () => {
  const inner = innerIds(maps), host = hostIds(maps);
  assert.throws(() => inner.uid(0), (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && /uid 0 has no uid in the tree's user namespace/.test(e.message));
  assert.throws(() => inner.uid(101000), StasisError);
  assert.throws(() => host.uid(1010), (e: unknown) => e instanceof StasisError && /its map does not hold it/.test(e.message));
  assert.throws(() => host.gid(5), StasisError);
});
