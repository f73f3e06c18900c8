// `npm run bench`: dump and restore of a process with 1 GiB of dirty anonymous memory,
// against a baseline measured in the same run: dd copying the same memory from
// /proc/PID/mem to a file. Reports MB/s, the ratio to the baseline, and stasis's peak RSS.
// Then bench/tree-shmem.ts: a tree of processes sharing memory, and the file-table
// benchmark (bench/files.ts), and incremental dumps (bench/incremental.ts), each in a process
// of its own, the side-by-side table against CRIU 4.2 (bench/criu.ts), and runc with each as its
// criu (bench/runc.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTask, waitTask } from '../src/api/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MIB = Number(process.env.STASIS_BENCH_MIB ?? 1024);
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-'));
const say = (s: string) => process.stdout.write(`${s}\n`);

function waitFile(f: string, ms = 120000): void {
  const until = Date.now() + ms;
  while (!fs.existsSync(f)) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${f}`);
    sleep(10);
  }
}

function step(...args: string[]): { ms: number; maxRssKiB: number } {
  const out = execFileSync(process.execPath, [path.join(REPO, 'dist/bench/step.js'), ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { ms: number; maxRssKiB: number };
}

function biggestAnon(pid: number): { start: bigint; len: bigint } {
  let best = { start: 0n, len: 0n };
  for (const l of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const f = l.split(/\s+/);
    if (!f[0] || (f[5] ?? '') !== '') continue;
    const [s, e] = f[0].split('-').map((x) => BigInt(`0x${x}`));
    if (s !== undefined && e !== undefined && e - s > best.len) best = { start: s, len: e - s };
  }
  return best;
}

const bin = path.join(work, 'bigheap');
execFileSync('gcc', ['-O2', '-o', bin, path.join(REPO, 'test/workloads/bigheap.c')]);
const dir = path.join(work, 'w');
fs.mkdirSync(dir);
const pid = startTask([bin, dir, String(MIB)], { cwd: dir, stdin: '/dev/null', stdout: path.join(dir, 'out'), stderr: path.join(dir, 'err') });
waitFile(path.join(dir, 'ready'));
const mem = biggestAnon(pid);
const bytes = Number(mem.len);
const mb = bytes / 1e6;

// Baseline: dd from /proc/PID/mem, 4 MiB blocks, written to a file on the same disk.
// Each measured step starts with no dirty page cache: writeback of what an earlier step (or
// an earlier program) left dirty would otherwise throttle whichever step comes next.
const settle = () => execFileSync('sync');
settle();
fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
const ddOut = path.join(work, 'dd.out');
let t = performance.now();
execFileSync('dd', [`if=/proc/${pid}/mem`, `of=${ddOut}`, 'bs=4M', 'iflag=skip_bytes,count_bytes',
  `skip=${mem.start}`, `count=${mem.len}`, 'status=none']);
const ddMs = performance.now() - t;
fs.rmSync(ddOut);

const images = path.join(work, 'images');
settle();
const d = step('dump', String(pid), images);
waitTask(pid); // the bench started it: reap it so that its pid is free
const imageBytes = fs.readdirSync(images).reduce((n, f) => n + fs.statSync(path.join(images, f)).size, 0);
settle();
const r = step('restore', images);
t = performance.now();
fs.writeFileSync(path.join(dir, 'go'), '');
waitFile(path.join(dir, 'result'));
const result = fs.readFileSync(path.join(dir, 'result'), 'utf8').trim().split('\n')[0];

const rate = (ms: number) => mb / (ms / 1000);
say(`stasis bench: ${MIB} MiB of dirty anonymous memory, ${os.cpus().length} CPUs, kernel ${os.release()}`);
say(`  baseline dd /proc/PID/mem -> file   ${rate(ddMs).toFixed(0).padStart(6)} MB/s  (${ddMs.toFixed(0)} ms)`);
say(`  stasis dump (whole command)         ${rate(d.ms).toFixed(0).padStart(6)} MB/s  (${d.ms.toFixed(0)} ms)  ${(ddMs / d.ms).toFixed(2)}x baseline  peak RSS ${(d.maxRssKiB / 1024).toFixed(0)} MiB`);
say(`  stasis restore (whole command)      ${rate(r.ms).toFixed(0).padStart(6)} MB/s  (${r.ms.toFixed(0)} ms)  ${(ddMs / r.ms).toFixed(2)}x baseline  peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
say(`  images ${(imageBytes / 1e6).toFixed(0)} MB; restored task checked its memory: ${result}`);
fs.rmSync(work, { recursive: true, force: true });
process.exitCode = result === 'PASS' ? 0 : 1;

// The tree benchmark, in its own process (bench/tree-shmem.ts); STASIS_BENCH_TREE=0 skips it.
if (process.env.STASIS_BENCH_TREE !== '0') {
  try {
    execFileSync(process.execPath, [path.join(REPO, 'dist/bench/tree-shmem.js')], { stdio: 'inherit' });
  } catch {
    process.exitCode = 1;
  }
}
// The file-table benchmark (bench/files.ts), in a process of its own.
execFileSync(process.execPath, [path.join(REPO, 'dist/bench/files.js')], { stdio: 'inherit' });
// Side by side with CRIU 4.2 (bench/criu.ts), in a process of its own; STASIS_BENCH_CRIU=0 skips it.
if (process.env.STASIS_BENCH_CRIU !== '0') {
  try {
    execFileSync(process.execPath, [path.join(REPO, 'dist/bench/criu.js')], { stdio: 'inherit' });
  } catch {
    process.exitCode = 1;
  }
}
// Incremental dumps (bench/incremental.ts), in a process of their own.
try {
  execFileSync(process.execPath, [path.join(REPO, 'dist/bench/incremental.js')], { stdio: 'inherit' });
} catch {
  process.exitCode = 1;
}
// runc's checkpoint and restore with CRIU and with stasis (bench/runc.ts); STASIS_BENCH_RUNC=0 skips it.
if (process.env.STASIS_BENCH_RUNC !== '0') {
  try {
    execFileSync(process.execPath, [path.join(REPO, 'dist/bench/runc.js')], { stdio: 'inherit' });
  } catch {
    process.exitCode = 1;
  }
}
