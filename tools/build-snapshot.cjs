// Run by `npm run bundle`: makes dist/src/bundle/cli.blob, a V8 start-up snapshot of the
// command line. A run started from it (bin/stasis.js does when the blob is there and was made
// by the node it finds) has every module of every verb evaluated already: the bundle is not
// read, compiled or run, and the image codecs' descriptors are built (about 40 ms of each
// command). The blob is made by the node that runs this script, which is the only node that
// can start from it: cli.blob.stamp holds that node's size and mtime, which the launcher
// compares with the node on its PATH, and the V8 flags it was made with (FLAGS below), which
// a run must be given too: V8 refuses a snapshot made under other flags. Two empty files,
// cli.blob.older and cli.blob.newer, have mtimes a second either side of that node's: the
// launcher tells that node by them with its shell's own `test -nt` and `-ot`, without running
// stat (1.4 ms of each command here); where they do not tell (copied without their mtimes), the
// stamp does.
//
// The blob holds bytecode too. Before it is made, a training run (`--train`, a process of its
// own) dumps and restores a sleeping program through the bundle (src/cli/train.ts) and writes
// V8's code cache of the bundle: the snapshot's entry compiles the bundle from that cache, so
// the snapshot has every function a dump and a restore ran compiled already. Without it each
// of those functions is parsed and compiled at its first call in every command: about 20 ms of
// a small dump and 15 of its restore, measured side by side. A training run that fails (not
// root, no ptrace) or a cache V8 rejects is said, and the whole bundle is compiled instead
// (--no-lazy for its compilation): commands as fast, a start about 14 ms slower (a larger blob).
//
// This file is the driver (run by npm), the training run, and the snapshot's entry (run by
// `node --build-snapshot`). While the entry evaluates the modules, reading process.env,
// process.argv or import.meta.url throws: a module that kept one of them would keep the build's
// in the snapshot, not the run's; such a module must read them on first use.
'use strict';
const v8 = require('node:v8');
const fs = require('node:fs');
const path = require('node:path');

/**
 * --no-rehash-snapshot: V8 otherwise rehashes every string and hash table of the snapshot with
 * a fresh seed as it deserializes it, 5-8 ms of each command here (isolate and context: 25-29
 * ms against 18-22). The seed is then the one drawn at random when the blob was made, the same
 * for each run of that build: what it guards against is inputs crafted to collide in V8's hash
 * tables (slowness, not a wrong result), and the blob that holds it is made readable by its
 * owner alone (root, who runs stasis). Every `npm run build` draws a new one.
 *
 * A young generation of 32 MB from the start (V8 starts at 1 MB and doubles it as it goes): a
 * command allocates some tens of MB in its short life, and with 1 MB semi-spaces it paid five
 * or more scavenges, about 10% of the CPU time of a small dump (measured side by side). 8 MB
 * still left scavenges in a lazy restore of 1 GiB (14 ms of its profile, its 8,202 pages
 * entries): with 32 its own time is 81.9 ms against 89.1, a small dump's 37.7 against 42.1
 * (medians, alternating), and the peak RSS of a 1 GiB dump and restore stays 86 and 88 MiB.
 */
const FLAGS = ['--min-semi-space-size=32', '--no-rehash-snapshot'];

/** The bundle as a function, as bin/stasis.js wraps it (the code cache is of this source). */
const wrap = (src) => `(function (exports, require, module, __filename, __dirname, __stasis) {${src}\n})`;

if (v8.startupSnapshot.isBuildingSnapshot()) entry();
else if (process.argv[2] === '--train') train(process.argv[3], process.argv[4], process.argv[5] === '--dry');
else driver();

/**
 * The training run: the bundle run as the command line runs it, then its code cache written to
 * `out`, and the steps it ran said on stdout. (`--dry`: its modules evaluated alone, the dump and the restore left out: for its test.)
 */
function train(file, out, dry) {
  const vm = require('node:vm');
  const { createRequire } = require('node:module');
  const { pathToFileURL } = require('node:url');
  const script = new vm.Script(wrap(fs.readFileSync(file, 'utf8')), { filename: file });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, path.dirname(file), { url: pathToFileURL(file).href });
  mod.exports.loadVerbs().then(() => (dry ? [] : mod.exports.train())).then((steps) => {
    process.stdout.write(`trained: ${steps.join(', ') || 'nothing'}\n`);
    fs.writeFileSync(out, script.createCachedData());
    process.exit(0);
  }, (e) => {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  });
}

function driver() {
  const { spawnSync } = require('node:child_process');
  // (`node tools/build-snapshot.cjs [BUNDLE BLOB]`: another bundle and blob, for its test.)
  const dir = path.resolve(__dirname, '../dist/src/bundle');
  const cli = path.resolve(process.argv[2] ?? path.join(dir, 'cli.cjs'));
  const blob = path.resolve(process.argv[3] ?? path.join(dir, 'cli.blob'));
  const stamp = `${blob}.stamp`;
  const around = [`${blob}.older`, `${blob}.newer`];
  for (const f of [stamp, ...around, blob]) fs.rmSync(f, { force: true });
  const tmp = `${blob}.${process.pid}`;
  const env = { ...process.env, STASIS_SNAPSHOT_BUNDLE: cli };
  delete env.NODE_EXTRA_CA_CERTS;
  // (STASIS_SNAPSHOT_TRAIN=0: no training and nothing compiled ahead, for comparisons.)
  const lazy = process.env.STASIS_SNAPSHOT_TRAIN === '0';
  const cache = `${blob}.train.${process.pid}`;
  const t = lazy ? null : spawnSync(process.execPath, [...FLAGS, __filename, '--train', cli, cache], { env, encoding: 'utf8', timeout: 120_000 });
  const trained = t?.status === 0 && fs.existsSync(cache);
  if (t && !trained) {
    fs.rmSync(cache, { force: true });
    const why = (t.stderr ?? '').split('\n').filter((l) => l.trim() && !/^\s+at /.test(l)).slice(0, 3).join('\n');
    process.stderr.write(`build-snapshot: the training run (a dump and a restore of sleep) failed (${t.error?.message ?? `exit ${t.status ?? t.signal}`}): every function of the bundle is compiled into the snapshot instead\n${why}\n`);
  }
  const r = spawnSync(process.execPath, [...FLAGS, '--snapshot-blob', tmp, '--build-snapshot', __filename], { env: { ...env, STASIS_SNAPSHOT_CACHE: lazy ? 'none' : trained ? cache : '' }, encoding: 'utf8' });
  fs.rmSync(cache, { force: true });
  // (Node warns that node:module and node:vm are not verified in snapshots: they are used here
  // at build time only, and the run's own loading is the bundle's, tested as any run.)
  const noise = /fully verified|--trace-warnings|^It may still work|^To request support|^\s*$/;
  const said = `${r.stdout}${r.stderr}`.split('\n').filter((l) => !noise.test(l)).join('\n');
  if (r.status !== 0 || !fs.existsSync(tmp)) {
    fs.rmSync(tmp, { force: true });
    process.stderr.write(`build-snapshot: making ${blob} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${said}\n`);
    process.exit(1);
  }
  if (said) process.stderr.write(`${said}\n`);
  fs.chmodSync(tmp, 0o600); // (its hash seed: see FLAGS)
  fs.renameSync(tmp, blob);
  const st = fs.statSync(process.execPath);
  // What `stat -L -c '%s %Y' NODE` prints for this node (bin/stasis.js compares), its version,
  // and the flags a run from the blob must be given.
  fs.writeFileSync(stamp, `${st.size} ${Math.trunc(st.mtimeMs / 1000)}\n${process.version}\n${FLAGS.join(' ')}\n`);
  // Older and newer than this node by a second, whether test(1) compares seconds or nanoseconds.
  const sec = Math.floor(st.mtimeMs / 1000);
  around.forEach((f, i) => {
    fs.writeFileSync(f, '');
    fs.utimesSync(f, sec + (i ? 1 : -1), sec + (i ? 1 : -1));
  });
}

function entry() {
  const vm = require('node:vm');
  const { createRequire } = require('node:module');
  const { pathToFileURL } = require('node:url');
  const file = process.env.STASIS_SNAPSHOT_BUNDLE;
  const cacheFile = process.env.STASIS_SNAPSHOT_CACHE;
  let url; // the bundle's URL in the run, set as it starts
  const forbid = (what) => { Error.stackTraceLimit = 20; throw new Error(`${what} read while the start-up snapshot is built: the module that reads it must do so on first use (see tools/build-snapshot.cjs)`); };
  const meta = { get url() { return url ?? forbid('import.meta.url'); } };
  const kept = ['env', 'argv', 'execArgv'].map((k) => [k, Object.getOwnPropertyDescriptor(process, k)]);
  // (@bufbuild/protobuf reads BUF_BIGINT_DISABLE as it is evaluated, for good: that one may be read.)
  const ALLOWED = new Set(['BUF_BIGINT_DISABLE']);
  const bundleEnv = new Proxy({}, {
    get: (_t, key) => (ALLOWED.has(key) ? kept[0][1].value[key] : forbid(`process.env.${String(key)}`)),
    has: (_t, key) => forbid(`process.env.${String(key)}`),
    ownKeys: () => forbid('process.env'),
  });
  // (Node's own code reads them too, as the bundle's require() runs: only the bundle's reads throw.)
  const byBundle = () => {
    // (Node leaves stack traces off while it builds a snapshot: on for this one, off again.)
    const had = Object.hasOwn(Error, 'stackTraceLimit'), limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 4;
    const at = (new Error().stack ?? '').split('\n')[3] ?? '';
    if (had) Error.stackTraceLimit = limit;
    else delete Error.stackTraceLimit;
    return at.includes(file);
  };
  for (const [k, d] of kept) {
    const real = () => (d.get ? d.get.call(process) : d.value);
    Object.defineProperty(process, k, { configurable: true, enumerable: d.enumerable, get: () => (!byBundle() ? real() : k === 'env' ? bundleEnv : forbid(`process.${k}`)) });
  }
  const source = wrap(fs.readFileSync(file, 'utf8'));
  let script = cacheFile === 'none' ? new vm.Script(source, { filename: file })
    : cacheFile ? new vm.Script(source, { filename: file, cachedData: fs.readFileSync(cacheFile) }) : null;
  if (script?.cachedDataRejected) process.stderr.write('build-snapshot: V8 rejected the training run\'s code cache: every function of the bundle is compiled into the snapshot instead\n');
  if (!script || script.cachedDataRejected) {
    v8.setFlagsFromString('--no-lazy');
    script = new vm.Script(source, { filename: file });
    v8.setFlagsFromString('--lazy');
  }
  const mod = { exports: {} };
  const fn = script.runInThisContext();
  fn(mod.exports, createRequire(file), mod, file, path.dirname(file), meta);
  mod.exports.loadVerbs().then(() => {
    for (const [k, d] of kept) Object.defineProperty(process, k, d);
  }, (e) => {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  });
  v8.startupSnapshot.setDeserializeMainFunction(async () => {
    const t0 = performance.now();
    const trace = process.env.STASIS_TRACE ? (what) => process.stderr.write(`stasis trace: ${performance.now().toFixed(1).padStart(7)} ms  ${what}\n`) : () => {};
    trace(`node started from the start-up snapshot (at ${t0.toFixed(1)} ms)`);
    const at = process.execArgv.indexOf('--snapshot-blob');
    url = pathToFileURL(path.join(path.dirname(path.resolve(process.execArgv[at + 1])), 'cli.cjs')).href;
    process.exitCode = await mod.exports.main(process.argv.slice(1));
    trace('command done');
    mod.exports.endWhenIdle();
  });
}
