import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { create, fromBinary } from '@bufbuild/protobuf';
import { CriuOptsSchema, CriuReqSchema, CriuReqType, CriuCgMode, CgroupRootSchema } from '../image/gen/stasis/rpc_pb.js';
import { restoreOptions, dumpOptions } from '../cli/build-options.js';
import { NO_LOG } from '../log.js';
import { optionByLong } from '../cli/options.js';
import { StasisError } from '../errors.js';
import { argsFromOpts, FIELDS } from './translate.js';

// What runc 1.1 sent CRIU 4.2 to checkpoint and restore a busybox container (captured here).
const fixture = (name: string) => fromBinary(CriuReqSchema, fs.readFileSync(new URL(`../../../src/rpc/fixtures/${name}`, import.meta.url)));
const fds = { dirOf: (n: number) => `/fd/${n}` };

test('every field of CriuOpts stands for a CRIU option of the command line, or for the RPC itself', () => {
  for (const f of CriuOptsSchema.fields) {
    const spec = FIELDS[f.name];
    assert.ok(spec, `${f.name} has no translation`);
    if (spec.option) assert.ok(optionByLong(spec.option), `${f.name}: no option --${spec.option}`);
  }
});

test('argsFromOpts() gives the command line\'s options; false flags and options of other verbs are dropped', () => {
  const o = fromBinary(CriuOptsSchema, new Uint8Array());
  Object.assign(o, { imagesDirFd: 7, workDirFd: 8, pid: 42, leaveRunning: true, logLevel: 4, logFile: 'dump.log', trackMem: true, tcpEstablished: false, parentImg: '../pre' });
  const a = argsFromOpts('dump', o, fds);
  assert.deepEqual(Object.fromEntries(a.opts), {
    'images-dir': '/fd/7', 'work-dir': '/fd/8', tree: '42', 'leave-running': true, verbosity: 4, 'log-file': 'dump.log',
    'track-mem': true, 'prev-images-dir': '../pre',
  });
  const r = argsFromOpts('restore', o, fds);
  assert.equal(r.opts.has('tree'), false);
  assert.equal(r.opts.has('track-mem'), false);
});

test('runc\'s requests decode: its dump is taken (root, ext_mnt, freeze_cgroup, orphan_pts_master), and so is its restore (rst_sibling, inherit_fd of its stdio pipe, given twice)', () => {
  const d = fixture('runc-1.1-dump.bin');
  assert.equal(d.type, CriuReqType.DUMP);
  assert.equal(d.opts?.freezeCgroup, '/sys/fs/cgroup/freezer/ct1');
  assert.equal(d.opts?.emptyNs, 0x40000000);
  const r = fixture('runc-1.1-restore.bin');
  assert.equal(r.type, CriuReqType.RESTORE);
  assert.deepEqual(r.opts?.inheritFd.map((f) => [f.key, f.fd]), [['pipe:[563348]', 1], ['pipe:[563348]', 2]]);
  const a = argsFromOpts('dump', d.opts!, fds);
  assert.equal(a.opts.get('freeze-cgroup'), '/sys/fs/cgroup/freezer/ct1');
  assert.equal(typeof a.opts.get('root'), 'string');
  assert.ok((a.opts.get('ext-mount-map') as string[]).includes('/proc/keys:/dev/null'), String(a.opts.get('ext-mount-map')));
  const ra = argsFromOpts('restore', r.opts!, fds);
  assert.equal(ra.opts.get('restore-sibling'), true);
  assert.deepEqual(ra.opts.get('inherit-fd'), ['fd[1]:pipe:[563348]', 'fd[2]:pipe:[563348]']);
  // And the dump's options: the root, the external mounts by mountpoint, the freeze cgroup.
  const o = dumpOptions({ ...a, opts: new Map([...a.opts, ['images-dir', '/img'], ['tree', '812']]) }, { log: NO_LOG });
  assert.equal(o.root, a.opts.get('root'));
  assert.equal(o.extMounts?.get('/proc/keys'), '/dev/null');
  assert.equal(o.freezeCgroup, '/sys/fs/cgroup/freezer/ct1');
  // auto_ext_mnt (--ext-mount-map auto) keeps the named ones, and finds the others.
  const auto = dumpOptions({ ...a, opts: new Map([...a.opts, ['images-dir', '/img'], ['tree', '812'], ['ext-mount-map', [...(a.opts.get('ext-mount-map') as string[]), 'auto']], ['enable-external-masters', true]]) }, { log: NO_LOG });
  assert.deepEqual(auto.extAuto, { sharing: false, masters: true });
  assert.equal(auto.extMounts?.get('/proc/keys'), '/dev/null');
  assert.throws(() => dumpOptions({ ...a, opts: new Map([...a.opts, ['images-dir', '/img'], ['tree', '812'], ['ext-mount-map', ['keys']]]) }, { log: NO_LOG }), /--ext-mount-map "keys": give MOUNTPOINT:NAME/);
});

test('argsFromOpts() takes runc\'s cgroup fields as CRIU does: manage_cgroups false is ignore, a mode overrides it', () => {
  const o = fromBinary(CriuOptsSchema, new Uint8Array());
  Object.assign(o, { manageCgroups: false });
  assert.equal(argsFromOpts('restore', o, fds).opts.get('manage-cgroups'), 'ignore');
  Object.assign(o, { manageCgroups: true });
  assert.equal(argsFromOpts('dump', o, fds).opts.get('manage-cgroups'), true);
  Object.assign(o, { manageCgroupsMode: CriuCgMode.FULL, cgRoot: [create(CgroupRootSchema, { ctrl: 'cpu,cpuacct', path: '/ct1' }), create(CgroupRootSchema, { path: '/all' })] });
  const r = argsFromOpts('restore', o, fds);
  assert.equal(r.opts.get('manage-cgroups'), 'full');
  assert.deepEqual(r.opts.get('cgroup-root'), ['cpu,cpuacct:/ct1', '/all']);
  const ro = restoreOptions({ ...r, opts: new Map([...r.opts, ['images-dir', '/img']]) }, { log: NO_LOG });
  assert.equal(ro.manageCgroups, 'full');
  assert.deepEqual(ro.cgroupRoots, [{ controller: 'cpu,cpuacct', path: '/ct1' }, { path: '/all' }]);
});
