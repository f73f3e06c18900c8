// `node dist/bench/tree-shmem.js` (also run by bench/run.ts): a tree of 16 processes, each
// with 64 MiB of dirty private memory, sharing one 256 MiB MAP_SHARED|MAP_ANONYMOUS mapping
// of which 64 MiB were written. Dump and restore times, image size, and bytes written
// against bytes used (private dirty + shared touched): the shared object must be written
// once, its touched pages only. Scale with STASIS_BENCH_PROCS, STASIS_BENCH_PRIVATE_MIB,
// STASIS_BENCH_SHARED_MIB, STASIS_BENCH_TOUCH_MIB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTask, waitTask } from '../src/api/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const env = (k: string, d: number) => Number(process.env[k] ?? d);
const PROCS = env('STASIS_BENCH_PROCS', 16);
const PRIV = env('STASIS_BENCH_PRIVATE_MIB', 64);
const SHARED = env('STASIS_BENCH_SHARED_MIB', 256);
const TOUCH = env('STASIS_BENCH_TOUCH_MIB', 64);
const MiB = 1 << 20;
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const say = (s: string) => process.stdout.write(`${s}\n`);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-tree-'));

function waitFile(f: string, ms = 300000): void {
  const until = Date.now() + ms;
  while (!fs.existsSync(f)) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${f}`);
    sleep(10);
  }
}

interface Step { ms: number; maxRssKiB: number; pagesWritten?: number; shmemObjects?: number; shmemPagesScanned?: number; shmemPagesWritten?: number; imageBytes?: number; frozenMs?: number; pids?: number }

/** Each step starts with no dirty page cache, so no step pays for another's writeback. */
function step(...args: string[]): Step {
  execFileSync('sync');
  const out = execFileSync(process.execPath, [path.join(REPO, 'dist/bench/step.js'), ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Step;
}

const bin = path.join(work, 'treeshmem');
execFileSync('gcc', ['-O2', '-o', bin, path.join(REPO, 'test/workloads/treeshmem.c')]);
const dir = path.join(work, 'w');
fs.mkdirSync(dir);
const pid = startTask([bin, dir, String(PROCS), String(PRIV), String(SHARED), String(TOUCH)], {
  cwd: dir, stdin: '/dev/null', stdout: path.join(dir, 'out'), stderr: path.join(dir, 'err'),
});
waitFile(path.join(dir, 'ready'));

const images = path.join(work, 'images');
const d = step('dump', String(pid), images);
waitTask(pid);
const imageBytes = fs.readdirSync(images).reduce((n, f) => n + fs.statSync(path.join(images, f)).size, 0);
const pagesBytes = fs.readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f)).reduce((n, f) => n + fs.statSync(path.join(images, f)).size, 0);
const r = step('restore', images);
fs.writeFileSync(path.join(dir, 'go'), '');
waitFile(path.join(dir, 'result'));
const result = fs.readFileSync(path.join(dir, 'result'), 'utf8').trim().split('\n')[0];

// Used: what the workload dirtied. The processes' own stacks, libc data and the shared head
// page come on top, so the ratio is a little above 1 when nothing is written twice.
const slice = Math.floor((TOUCH * MiB) / PROCS / 4096) * 4096;
const sharedUsed = slice * PROCS + 4096;
const used = PROCS * PRIV * MiB + sharedUsed;
const sharedWritten = (d.shmemPagesWritten ?? 0) * 4096;
const mb = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
say(`stasis bench tree-shmem: ${d.pids} processes x ${PRIV} MiB private, one ${SHARED} MiB shared mapping with ${TOUCH} MiB touched, ${os.cpus().length} CPUs, kernel ${os.release()}`);
say(`  dump (whole command)     ${d.ms.toFixed(0).padStart(6)} ms  (frozen ${d.frozenMs?.toFixed(0)} ms)  peak RSS ${(d.maxRssKiB / 1024).toFixed(0)} MiB`);
say(`  restore (whole command)  ${r.ms.toFixed(0).padStart(6)} ms  peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
say(`  images ${mb(imageBytes)} (pages ${mb(pagesBytes)}); used ${mb(used)}; written/used ${(pagesBytes / used).toFixed(3)}`);
say(`  shared: ${d.shmemObjects} object, ${mb(sharedWritten)} written of ${mb(sharedUsed)} touched (${(sharedWritten / sharedUsed).toFixed(3)}), ${mb((d.shmemPagesScanned ?? 0) * 4096)} scanned`);
say(`  restored tree checked its memory and sharing: ${result}`);
fs.rmSync(work, { recursive: true, force: true });
if (result !== 'PASS') process.exitCode = 1;
