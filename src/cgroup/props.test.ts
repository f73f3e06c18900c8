import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { CgroupPropEntrySchema } from '../image/gen/stasis/cgroup_pb.js';
import { propertyNames, readProperty, writeProperty } from './props.js';

// A directory of plain files stands for a cgroup's: the values are CRIU's forms of them.
function fakeCgroup(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-cgprops-'));
  for (const [n, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, n), v);
  return dir;
}

test('readProperty() keeps CRIU\'s forms: unlimited as -1, oom_control as its disable flag, membership files empty', () => {
  const dir = fakeCgroup({
    'memory.limit_in_bytes': '9223372036854775807\n', 'memory.oom_control': 'oom_kill_disable 1\nunder_oom 0\n',
    'cgroup.procs': '812\n813\n', 'pids.max': 'max\n',
  });
  assert.equal(readProperty(dir, 'memory.limit_in_bytes')?.value, '-1');
  assert.equal(readProperty(dir, 'memory.oom_control')?.value, '1');
  assert.equal(readProperty(dir, 'cgroup.procs')?.value, '');
  assert.equal(readProperty(dir, 'pids.max')?.value, 'max');
  assert.equal(readProperty(dir, 'cpu.shares'), undefined, 'a file this kernel has not is no property');
  fs.rmSync(dir, { recursive: true });
});

test('writeProperty() enables v2 controllers with +, leaves membership files\' contents, and skips priority-0 ifpriomap lines', () => {
  const dir = fakeCgroup({ 'cgroup.subtree_control': '', 'cgroup.procs': 'x', 'net_prio.ifpriomap': '', 'cgroup.type': 'domain' });
  const w = (name: string, value: string) => writeProperty(dir, create(CgroupPropEntrySchema, { name, value }), () => {});
  w('cgroup.subtree_control', 'cpu pids');
  assert.equal(fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8'), '+cpu +pids');
  w('cgroup.procs', '');
  assert.equal(fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8'), 'x');
  w('net_prio.ifpriomap', 'lo 0\neth0 7');
  assert.equal(fs.readFileSync(path.join(dir, 'net_prio.ifpriomap'), 'utf8'), 'eth0 7');
  w('cgroup.type', 'domain');
  assert.equal(fs.readFileSync(path.join(dir, 'cgroup.type'), 'utf8'), 'domain');
  fs.rmSync(dir, { recursive: true });
});

test('propertyNames() sets cgroup.subtree_control first in v2, and v1 memory limits before memsw', () => {
  assert.equal(propertyNames([''])[0], 'cgroup.subtree_control');
  const mem = propertyNames(['memory']);
  assert.ok(mem.indexOf('memory.limit_in_bytes') < mem.indexOf('memory.memsw.limit_in_bytes'));
  assert.deepEqual(propertyNames(['name=zdtmtst']), ['cgroup.clone_children', 'notify_on_release', 'cgroup.procs', 'tasks']);
});
