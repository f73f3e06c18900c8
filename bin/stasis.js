#!/bin/sh
':' //; # Run as a program, this file is a shell script first (these lines), then JavaScript.
':' //; f=$0; case $f in */*) ;; *) f=./$f ;; esac; [ -L "$f" ] && f=$(readlink -f "$f"); b=${f%/*}/../dist/src/bundle/cli.blob
':' //; if [ "$1" = swrk ] && [ -z "$STASIS_SWRK_NO_PERL" ] && case $2 in ''|*[!0-9]*) false ;; esac && command -v perl >/dev/null 2>&1; then perl -e 'open(my $s, "+<&=", $ARGV[0]) or exit 3; defined(recv($s, my $m, 4096, 2)) or exit 3; $m eq "\x08\x0a" or exit 3; recv($s, $m, 4096, 0); send($s, pack("H*", "080a1001520c080410023206737461736973"), 0) or exit 1; print STDERR "stasis trace: VERSION answered by the launcher\n" if $ENV{STASIS_TRACE}; exit 0' "$2"; r=$?; [ $r = 3 ] || exit $r; fi
':' //; unset NODE_EXTRA_CA_CERTS; if [ -z "$STASIS_NO_SNAPSHOT" ] && [ -r "$b" ] && { read -r s; read -r v; read -r o; } < "$b.stamp" && n=$(command -v node) && { { [ "$n" -nt "$b.older" ] && [ "$n" -ot "$b.newer" ]; } || [ "$s" = "$(stat -L -c '%s %Y' "$n" 2>/dev/null)" ]; }; then exec "$n" $o --snapshot-blob "$b" -- "$@"; fi; exec node "$f" "$@"
// The command line, started by the lines above: from the start-up snapshot `npm run build`
// makes (dist/src/bundle/cli.blob, tools/build-snapshot.cjs) when it is there and was made by
// the node on PATH (its mtime between those of cli.blob.older and cli.blob.newer, as the
// shell's test tells without a program to run; else its stamp: that node's size and mtime by
// stat; the stamp's next lines are its version and the V8 flags the blob was made with, which
// node is given again); else this script, by node.
// Either way node runs without NODE_EXTRA_CA_CERTS: Node 20 reads the whole CA store at
// start-up when it is set, 35-60 ms of every command here, more than CRIU's whole dump of a
// small process; stasis makes no TLS connection and starts no program that would want it.
// STASIS_NO_SNAPSHOT=1 runs this script even where the snapshot could be used.
// `swrk FD` whose first request is VERSION alone (runc asks it so, in a swrk of its own, before
// each checkpoint and restore) is answered by the line above in perl (perl-base: Debian's
// Essential set), 2-3 ms, where node's start took 45-60: it peeks at the request (MSG_PEEK, 2),
// takes and answers it if it is CriuReq { type: VERSION } (08 0a), with the bytes swrk.ts
// answers (CRIU_VERSION_BYTES; rpc.test.ts holds them equal), and ends as swrk ends after an
// answer; anything else stays queued, its fds too, for node's swrk (exit 3). Without perl, or
// with STASIS_SWRK_NO_PERL=1, node answers it.
//
// This script runs the bundles `npm run build` makes (dist/src/bundle), or the modules where
// they are not there. The CLI's bundle is one CommonJS file (cli.cjs), compiled
// through vm.Script with V8's code cache: each verb's first run leaves the bytecode of what it
// ran beside the bundle (cli.cjs.VERB.NODE-VERSION.SIZE-MTIME.v8cache), and later runs of the
// verb start from it instead of parsing and compiling about 1 MB of JavaScript (about 40 ms).
// A cache V8 rejects (another node, other flags) is made again; one that cannot be written
// is done without. STASIS_TRACE=1 prints where the time of a run went, on stderr.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const trace = process.env.STASIS_TRACE ? (what) => process.stderr.write(`stasis trace: ${performance.now().toFixed(1).padStart(7)} ms  ${what}\n`) : () => {};
trace(`node started (its bootstrap done at ${performance.nodeTiming.bootstrapComplete.toFixed(1)} ms)`);
const cli = fileURLToPath(new URL('../dist/src/bundle/cli.cjs', import.meta.url));
const bundle = new URL('../dist/src/bundle/main.js', import.meta.url);

function loadCached(file) {
  const st = fs.statSync(file);
  const verb = /^[a-z][a-z-]*$/.test(argv[0] ?? '') ? argv[0] : 'none';
  const cache = `${file}.${verb}.${process.version}.${st.size}-${Math.trunc(st.mtimeMs)}.v8cache`;
  let cachedData;
  try {
    cachedData = fs.readFileSync(cache);
  } catch {
    /* the verb's first run */
  }
  const source = `(function (exports, require, module, __filename, __dirname, __stasis) {${fs.readFileSync(file, 'utf8')}\n})`;
  const script = new vm.Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} };
  trace(`bundle compiled (${cachedData ? (script.cachedDataRejected ? 'code cache rejected' : 'from the code cache') : 'no code cache yet'})`);
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file), { url: pathToFileURL(file).href });
  const save = !cachedData || script.cachedDataRejected ? () => {
    try {
      const tmp = `${cache}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cache);
    } catch {
      /* a read-only install: no cache */
    }
  } : () => {};
  return { main: module.exports.main, endWhenIdle: module.exports.endWhenIdle, save };
}

const { main, endWhenIdle, save } = fs.existsSync(cli) ? loadCached(cli)
  : { ...(await import(fs.existsSync(bundle) ? bundle.href : '../dist/src/cli/main.js')), save: () => {} };
trace('bundle loaded');
process.exitCode = await main(argv);
trace('command done');
save();
trace('exit');
endWhenIdle();
