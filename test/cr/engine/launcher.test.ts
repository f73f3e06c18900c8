// The launcher, bin/stasis.js run as a user runs it (by its own path, or through a symbolic
// link such as a `criu` for runc): it finds node on PATH and runs it without
// NODE_EXTRA_CA_CERTS, whose CA store Node 20 would otherwise read at every start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO, Workload, compileWorkload, tmpDir } from '../harness.js';
import { waitPid } from '../../../src/sys/index.js';

const CLI = path.join(REPO, 'bin/stasis.js');
// A CA file that is not there: Node warns at start-up that it could not load it.
const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/stasis-test-ca.pem' };
const WARNING = /extra certs/i;

test('node itself reads NODE_EXTRA_CA_CERTS at start-up (what the launcher avoids)', () => {
  const r = spawnSync(process.execPath, ['-e', '0'], { encoding: 'utf8', env });
  assert.match(r.stderr, WARNING);
});

test('bin/stasis.js, run by its path or through a link named criu, starts node without NODE_EXTRA_CA_CERTS', () => {
  const link = path.join(tmpDir('launcher'), 'criu');
  fs.symlinkSync(CLI, link);
  for (const file of [CLI, link]) {
    const r = spawnSync(file, ['-V'], { encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\d+\.\d+/);
    assert.doesNotMatch(r.stderr, WARNING);
  }
});

const BUNDLE = path.join(REPO, 'dist/src/bundle');
const traced = (file: string, args: string[], more: NodeJS.ProcessEnv = {}) =>
  spawnSync(file, args, { encoding: 'utf8', env: { ...process.env, STASIS_TRACE: '1', ...more } });

test('bin/stasis.js starts from the build\'s start-up snapshot, or runs as a script with STASIS_NO_SNAPSHOT or a snapshot of another node', () => {
  const snap = traced(CLI, ['-V']);
  assert.equal(snap.status, 0, snap.stderr);
  assert.match(snap.stdout, /^Version: /);
  assert.match(snap.stderr, /node started from the start-up snapshot/);
  const script = traced(CLI, ['-V'], { STASIS_NO_SNAPSHOT: '1' });
  assert.equal(script.status, 0, script.stderr);
  assert.match(script.stderr, /node started \(its bootstrap/);
  // The same layout, with a stamp that is not the node's: the script runs, as with no snapshot.
  const root = tmpDir('launcher-stamp');
  fs.mkdirSync(path.join(root, 'bin'));
  fs.mkdirSync(path.join(root, 'dist/src/bundle'), { recursive: true });
  fs.copyFileSync(CLI, path.join(root, 'bin/stasis.js'));
  for (const f of ['cli.cjs', 'cli.blob']) fs.symlinkSync(path.join(BUNDLE, f), path.join(root, 'dist/src/bundle', f));
  fs.writeFileSync(path.join(root, 'dist/src/bundle/cli.blob.stamp'), '1 2\nv0.0.0\n');
  const other = traced(path.join(root, 'bin/stasis.js'), ['-V']);
  assert.equal(other.status, 0, other.stderr);
  assert.match(other.stdout, /^Version: /);
  assert.match(other.stderr, /node started \(its bootstrap/);
});

test('the launcher tells the build\'s node by the mtimes of cli.blob.older and cli.blob.newer, with no program run, and by the stamp where they do not tell', () => {
  // Node alone on PATH: no stat to run, and the snapshot starts all the same.
  const only = tmpDir('launcher-path');
  fs.symlinkSync(process.execPath, path.join(only, 'node'));
  const alone = traced(CLI, ['-V'], { PATH: only });
  assert.equal(alone.status, 0, alone.stderr);
  assert.match(alone.stderr, /node started from the start-up snapshot/);
  // The same build copied without the mtimes of the two (made now): the stamp tells, by stat.
  const root = tmpDir('launcher-copied');
  fs.mkdirSync(path.join(root, 'bin'));
  fs.mkdirSync(path.join(root, 'dist/src/bundle'), { recursive: true });
  fs.copyFileSync(CLI, path.join(root, 'bin/stasis.js'));
  for (const f of ['cli.cjs', 'cli.blob']) fs.symlinkSync(path.join(BUNDLE, f), path.join(root, 'dist/src/bundle', f));
  for (const f of ['cli.blob.stamp', 'cli.blob.older', 'cli.blob.newer']) fs.copyFileSync(path.join(BUNDLE, f), path.join(root, 'dist/src/bundle', f));
  const copied = path.join(root, 'bin/stasis.js');
  const byStamp = traced(copied, ['-V']);
  assert.equal(byStamp.status, 0, byStamp.stderr);
  assert.match(byStamp.stderr, /node started from the start-up snapshot/);
  // Neither tells (no stat on PATH): the script runs.
  const neither = traced(copied, ['-V'], { PATH: only });
  assert.equal(neither.status, 0, neither.stderr);
  assert.match(neither.stdout, /^Version: /);
  assert.match(neither.stderr, /node started \(its bootstrap/);
});

test('through a link named criu, the snapshot dumps a task and restores it, which finds its memory as it was; usage errors are reported as by the script', () => {
  const link = path.join(tmpDir('launcher-criu'), 'criu');
  fs.symlinkSync(CLI, link);
  const w = new Workload('launcher-heap', compileWorkload('bigheap'), ['4']).start();
  const images = tmpDir('launcher-img');
  const d = traced(link, ['dump', '-t', String(w.pid), '-D', images]);
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stderr, /node started from the start-up snapshot/);
  // (Killed by the dump, its pid ours to reap before the restore takes it again.)
  const killed = waitPid(w.pid);
  assert.ok(killed?.kind === 'signaled' && killed.signal === 9, JSON.stringify(killed));
  // Restored and waited for (its exit status is stasis's): it checks its heap word by word.
  w.go();
  const r = traced(link, ['restore', '-D', images]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /node started from the start-up snapshot/);
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
  for (const more of [{}, { STASIS_NO_SNAPSHOT: '1' }]) {
    const bad = traced(link, ['dump', '--no-such-option'], more);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /no-such-option/);
    const gone = traced(link, ['dump', '-t', '999999999', '-D', tmpDir('launcher-gone')], more);
    assert.equal(gone.status, 1, gone.stderr);
    assert.match(gone.stderr, /E_NO_PROCESS/);
  }
});

test('a command that loaded koffi ends by exit_group once its event loop is empty, with its exit status, its whole output through a pipe and its whole log; one that did not, or whose node writes coverage at its exit, by process.exit()', () => {
  const w = new Workload('launcher-exit', compileWorkload('bigheap'), ['4']).start();
  const images = tmpDir('launcher-exit-img');
  const d = traced(CLI, ['dump', '-t', String(w.pid), '-D', images, '-v4', '-o', 'dump.log']);
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stderr, /command done\n.* event loop empty: exit_group\n$/);
  assert.match(d.stdout, /^Dumped 1 task\(s\) \(\d+\): \d+ pages written of \d+ scanned, .*\n$/);
  const log = fs.readFileSync(path.join(images, 'dump.log'), 'utf8');
  // (Its last lines: the sums, the dump's last file, and the end.)
  assert.match(log, /wrote \S+\/stasis-sums\.json\n\S+ dump done: tree killed, [\d.]+ ms frozen\n$/, JSON.stringify(log.slice(-300)));
  const killed = waitPid(w.pid);
  assert.ok(killed?.kind === 'signaled' && killed.signal === 9, JSON.stringify(killed));
  w.go();
  // (Asked for V8's coverage, which node writes as it exits: process.exit() does, exit_group would not.)
  const coverage = tmpDir('launcher-exit-coverage');
  const r = traced(CLI, ['restore', '-D', images, '-v4', '-o', 'restore.log'], { NODE_V8_COVERAGE: coverage });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, / event loop empty: process\.exit\(\)\n$/);
  assert.ok(fs.readdirSync(coverage).some((f) => /^coverage-\d+-.*\.json$/.test(f)), 'no coverage file');
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
  const gone = traced(CLI, ['dump', '-t', '999999999', '-D', tmpDir('launcher-exit-gone')]);
  assert.equal(gone.status, 1, gone.stderr);
  assert.match(gone.stderr, /E_NO_PROCESS[^]* event loop empty: (exit_group|process\.exit\(\))\n$/);
  const v = traced(CLI, ['-V']);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^Version: /);
  assert.match(v.stderr, / event loop empty: process\.exit\(\)\n$/);
});

test('the snapshot\'s build refuses a bundle that reads process.env as it is evaluated (the snapshot would keep the build\'s)', () => {
  const dir = tmpDir('snapshot-guard');
  const bundle = path.join(dir, 'cli.cjs');
  for (const [body, ok] of [['const home = process.env.HOME;', false], ['const home = () => process.env.HOME;', true]] as const) {
    fs.writeFileSync(bundle, `${body}\nmodule.exports.loadVerbs = async () => {};\nmodule.exports.main = async () => 0;\n`);
    const r = spawnSync(process.execPath, [path.join(REPO, 'tools/build-snapshot.cjs'), bundle, path.join(dir, 'cli.blob')], { encoding: 'utf8' });
    if (ok) {
      assert.equal(r.status, 0, r.stderr);
      assert.ok(fs.statSync(path.join(dir, 'cli.blob')).size > 0);
    } else {
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /process\.env\.HOME read while the start-up snapshot is built/);
      assert.ok(!fs.existsSync(path.join(dir, 'cli.blob')));
    }
  }
});

test('the snapshot is built with the bytecode of what a dump and a restore ran (the build\'s training run), or, when that run fails, of the whole bundle', () => {
  const dir = tmpDir('snapshot-train');
  const tool = path.join(REPO, 'tools/build-snapshot.cjs');
  const flags = fs.readFileSync(path.join(BUNDLE, 'cli.blob.stamp'), 'utf8').split('\n')[2]!.split(' ');
  // The training run's code cache holds the functions its dump and restore ran: much more than
  // the cache of the same bundle with its modules evaluated alone.
  const cache = (dry: boolean) => {
    const out = path.join(dir, dry ? 'dry.cache' : 'trained.cache');
    const r = spawnSync(process.execPath, [...flags, tool, '--train', path.join(BUNDLE, 'cli.cjs'), out, ...(dry ? ['--dry'] : [])], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // (The RPC's dump and restore too, as runc asks them; the steps after them need a kernel
    // that restores lazily and tracks writes, as this one does.)
    assert.match(r.stdout, dry ? /^trained: nothing$/m : /^trained: dump, restore, rpc dump, rpc restore(, [^\n]*)?$/m, r.stdout);
    return fs.statSync(out).size;
  };
  const dry = cache(true), trained = cache(false);
  assert.ok(trained > dry + (256 << 10), `trained ${trained} bytes, dry ${dry}`);
  assert.deepEqual(fs.readdirSync('/tmp').filter((f) => f.startsWith('stasis-train-')), []);
  // The build with that run: nothing said, a blob larger than one with nothing compiled ahead
  // (STASIS_SNAPSHOT_TRAIN=0). Without sleep on PATH the run fails, which is said, and the whole
  // bundle is compiled instead: a larger blob still. Each runs a command.
  const blob = (name: string, more: NodeJS.ProcessEnv) => {
    const file = path.join(dir, name);
    const r = spawnSync(process.execPath, [tool, path.join(BUNDLE, 'cli.cjs'), file], { encoding: 'utf8', env: { ...process.env, ...more } });
    assert.equal(r.status, 0, r.stderr);
    const v = spawnSync(process.execPath, [...flags, '--snapshot-blob', file, '--', '-V'], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /^Version: /);
    return { size: fs.statSync(file).size, said: r.stderr };
  };
  const good = blob('trained.blob', {});
  assert.doesNotMatch(good.said, /training run|rejected/);
  const without = blob('all.blob', { PATH: '/nonexistent' });
  assert.match(without.said, /the training run \(a dump and a restore of sleep\) failed .*every function of the bundle is compiled into the snapshot instead\n.*posix_spawn \(sleep\) failed with ENOENT/s);
  assert.ok(without.size > good.size + (512 << 10), `all ${without.size} bytes, trained ${good.size}`);
  const lazy = blob('lazy.blob', { STASIS_SNAPSHOT_TRAIN: '0' });
  assert.equal(lazy.said, '');
  assert.ok(good.size > lazy.size + (256 << 10), `trained ${good.size} bytes, lazy ${lazy.size}`);
});
