// The file-table benchmark: 10,000 fds over 10 processes (1,000 open files, inherited and
// dup'd: test/workloads/files-many.c). Measures stasis's dump of the tree (time, kcmp calls)
// and, on the same fds in the same run, the naming of open files alone by stasis's FileIds
// (with its whole generic id, then with CRIU's XOR-folded one) against two naive ways: comparing each fd with every open file found so far (kcmp until
// one is equal), and comparing every pair of fds (measured on a capped number of pairs and
// extrapolated, as the whole would take about a minute). `node dist/bench/files.js`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTask, waitTask, killTask, dump } from '../src/api/index.js';
import { FileIds } from '../src/files/index.js';
import { kcmpFile } from '../src/sys/index.js';
import { parseFdinfo } from '../src/proc/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NPROC = 10, SHARED = 100, OWN = 90, OWN_FDS = 500;
const PAIR_CAP = 2_000_000;
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const say = (s: string) => process.stdout.write(`${s}\n`);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-files-'));

const bin = path.join(work, 'files-many');
execFileSync('gcc', ['-O2', '-o', bin, path.join(REPO, 'test/workloads/files-many.c')]);
const dir = path.join(work, 'w');
fs.mkdirSync(dir);
const root = startTask([bin, dir, String(NPROC), String(SHARED), String(OWN), String(OWN_FDS)],
  { cwd: dir, stdin: '/dev/null', stdout: path.join(dir, 'out'), stderr: path.join(dir, 'err') });
for (const until = Date.now() + 60000; !fs.existsSync(path.join(dir, 'ready'));) {
  if (Date.now() > until) throw new Error('files-many did not get ready');
  sleep(10);
}
const pids = [root, ...fs.readFileSync(`/proc/${root}/task/${root}/children`, 'utf8').trim().split(/\s+/).map(Number)];

try {
  // The fds as the dump sees them: (pid, fd, generic id). The tasks sit idle waiting for go.
  const fds: { pid: number; fd: number; genid: bigint; xor: bigint }[] = [];
  for (const pid of pids) {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`).map(Number)) {
      const st = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
      const pos = parseFdinfo(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')).pos;
      fds.push({ pid, fd, genid: FileIds.genid(st.dev, st.ino, pos), xor: st.dev ^ st.ino ^ pos });
    }
  }
  const n = fds.length;

  let t = performance.now();
  const ids = new FileIds();
  const named = fds.map((f) => ids.lookup(f.genid, f.pid, f.fd).id);
  const oursMs = performance.now() - t;
  const objects = new Set(named).size;

  // The same with CRIU's generic id, dev ^ ino ^ pos folded into one word.
  t = performance.now();
  const xorIds = new FileIds();
  for (const f of fds) xorIds.lookup(f.xor, f.pid, f.fd);
  const xorMs = performance.now() - t;

  // Naive 1: every fd against every open file found so far, until kcmp says equal.
  t = performance.now();
  const reps: { pid: number; fd: number }[] = [];
  let linearCalls = 0;
  for (const f of fds) {
    let found = false;
    for (const r of reps) {
      linearCalls++;
      if (kcmpFile(f.pid, r.pid, f.fd, r.fd) === 0) {
        found = true;
        break;
      }
    }
    if (!found) reps.push(f);
  }
  const linearMs = performance.now() - t;

  // Naive 2: every pair of fds; capped, then extrapolated from the time per call.
  const allPairs = (n * (n - 1)) / 2;
  t = performance.now();
  let pairs = 0;
  outer: for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (pairs >= PAIR_CAP) break outer;
      kcmpFile(fds[i]!.pid, fds[j]!.pid, fds[i]!.fd, fds[j]!.fd);
      pairs++;
    }
  }
  const pairMs = ((performance.now() - t) / pairs) * allPairs;

  // The whole dump of the tree, left running.
  const images = path.join(work, 'images');
  t = performance.now();
  const d = await dump({ pid: root, imagesDir: images, leaveRunning: true });
  const dumpMs = performance.now() - t;

  say(`stasis files bench: ${n} fds over ${pids.length} processes, ${objects} open files, ${os.cpus().length} CPUs, kernel ${os.release()}`);
  say(`  stasis dump of the tree (leave running)     ${dumpMs.toFixed(0).padStart(7)} ms   ${String(d.kcmpCalls).padStart(11)} kcmp calls  (frozen ${d.frozenMs.toFixed(0)} ms)`);
  say(`  naming open files: stasis FileIds           ${oursMs.toFixed(1).padStart(7)} ms   ${String(ids.kcmpCalls).padStart(11)} kcmp calls`);
  say(`  the same, generic id dev ^ ino ^ pos       ${xorMs.toFixed(1).padStart(7)} ms   ${String(xorIds.kcmpCalls).padStart(11)} kcmp calls`);
  say(`  naive: each fd vs every file found so far   ${linearMs.toFixed(0).padStart(7)} ms   ${String(linearCalls).padStart(11)} kcmp calls  (${(linearMs / oursMs).toFixed(0)}x)`);
  say(`  naive: every pair of fds (extrapolated)     ${pairMs.toFixed(0).padStart(7)} ms   ${String(allPairs).padStart(11)} kcmp calls  (${(pairMs / oursMs).toFixed(0)}x; ${pairs} pairs measured)`);
} finally {
  for (const pid of pids.slice(1)) killTask(pid);
  killTask(root);
  waitTask(root);
  fs.rmSync(work, { recursive: true, force: true });
}
