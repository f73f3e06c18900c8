import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCgroupFile } from './cgroup.js';
import { ProcFormatError } from './proc-format-error.js';

// Captured on Linux 6.18 (a hybrid layout: v1 controllers and a v2 hierarchy), a named
// hierarchy of zdtm's added.
const HYBRID = `10:name=zdtmtst:/subcg00/subsubcg
9:name=systemd:/
4:memory:/process_api/dc5c47f9
2:cpu,cpuacct:/
0::/
`;

test('parseCgroupFile() keeps v1, named and v2 hierarchies, sorted by name', () => {
  assert.deepEqual(parseCgroupFile(HYBRID), [
    { name: '', path: '/' },
    { name: 'cpu,cpuacct', path: '/' },
    { name: 'memory', path: '/process_api/dc5c47f9' },
    { name: 'name=systemd', path: '/' },
    { name: 'name=zdtmtst', path: '/subcg00/subsubcg' },
  ]);
});

test('parseCgroupFile() keeps a path with colons whole', () => {
  assert.deepEqual(parseCgroupFile('0::/a:b\n'), [{ name: '', path: '/a:b' }]);
});

test('parseCgroupFile() refuses a line without its fields', () => {
  assert.throws(() => parseCgroupFile('0:/\n'), ProcFormatError);
});
