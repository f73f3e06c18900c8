// `node dist/bench/incremental.js` (also run by bench/run.ts): a process with 1 GiB of data
// (STASIS_BENCH_MIB), pre-dumped, then 1% of its pages dirtied, then dumped with the
// pre-dump as parent; against a full dump of the same process in the same run. Reports the
// downtime (freeze to end) and image size of both, and what tracking costs the task: the
// time of its first write to each page of a 64 MiB area, tracked against untracked. Every
// dump runs in its own process, as separate CLI runs would (the tracker hands over). Once
// per backend this kernel has (STASIS_BENCH_TRACK=uffd,hash to choose).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTask, waitTask, check } from '../src/api/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MIB = Number(process.env.STASIS_BENCH_MIB ?? 1024);
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const say = (s: string) => process.stdout.write(`${s}\n`);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-incr-'));

interface StepOut { ms: number; maxRssKiB: number; result: { downtimeMs: number; imageBytes: number; pagesWritten: number; pagesSkippedParent: number; trackBackend: string | null } }

function waitFile(f: string, ms = 120000): void {
  const until = Date.now() + ms;
  while (!fs.existsSync(f)) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${f}`);
    sleep(2);
  }
}

/** Each step starts with no dirty page cache, so no step pays for another's writeback. */
function step(...args: string[]): StepOut {
  execFileSync('sync');
  const out = execFileSync(process.execPath, [path.join(REPO, 'dist/bench/step.js'), ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as StepOut;
}

function dirBytes(d: string): number {
  return fs.readdirSync(d).reduce((n, f) => n + (fs.lstatSync(path.join(d, f)).isFile() ? fs.statSync(path.join(d, f)).size : 0), 0);
}

const bin = path.join(work, 'dirtier');
execFileSync('gcc', ['-O2', '-o', bin, path.join(REPO, 'test/workloads/dirtier.c')]);

function run(backend: string): boolean {
  const dir = fs.mkdtempSync(path.join(work, `w-${backend}-`));
  const pid = startTask([bin, dir, String(MIB)], { cwd: dir, stdin: '/dev/null', stdout: path.join(dir, 'out'), stderr: path.join(dir, 'err') });
  let k = 0;
  const cmd = (what: string): number => {
    k++;
    fs.writeFileSync(path.join(dir, `cmd-${k}.tmp`), what); // renamed: the workload never sees it half written
    fs.renameSync(path.join(dir, `cmd-${k}.tmp`), path.join(dir, `cmd-${k}`));
    waitFile(path.join(dir, `ack-${k}`));
    return Number(fs.readFileSync(path.join(dir, `ack-${k}`), 'utf8').split(' ')[0]);
  };
  try {
    waitFile(path.join(dir, 'ready'));
    const untracked = cmd('touch');
    const full = step('dump', String(pid), path.join(work, `full-${backend}`), JSON.stringify({ leaveRunning: true }));
    const pre = step('pre-dump', String(pid), path.join(work, `pre-${backend}`), JSON.stringify({ trackBackend: backend }));
    cmd('dirty');
    const incr = step('dump', String(pid), path.join(work, `incr-${backend}`),
      JSON.stringify({ prevImagesDir: `../pre-${backend}`, leaveRunning: true, trackMem: true }));
    const tracked = cmd('touch'); // still tracked: the dump above kept tracking on (--track-mem)
    const f = full.result, p = pre.result, d = incr.result;
    const fullBytes = dirBytes(path.join(work, `full-${backend}`)), incrBytes = dirBytes(path.join(work, `incr-${backend}`));
    const down = d.downtimeMs / f.downtimeMs, size = incrBytes / fullBytes;
    say(`  backend ${d.trackBackend}:`);
    say(`    full dump          downtime ${f.downtimeMs.toFixed(1).padStart(7)} ms   image ${(fullBytes / 1e6).toFixed(1).padStart(8)} MB   ${f.pagesWritten} pages`);
    say(`    pre-dump           downtime ${p.downtimeMs.toFixed(1).padStart(7)} ms   image ${(p.imageBytes / 1e6).toFixed(1).padStart(8)} MB   (whole command ${pre.ms.toFixed(0)} ms)`);
    say(`    incremental dump   downtime ${d.downtimeMs.toFixed(1).padStart(7)} ms   image ${(incrBytes / 1e6).toFixed(1).padStart(8)} MB   ${d.pagesWritten} pages written, ${d.pagesSkippedParent} in_parent`);
    say(`    ratio to full      downtime ${(down * 100).toFixed(1)}% (target <= 10%: ${down <= 0.1 ? 'met' : 'MISSED'})   image ${(size * 100).toFixed(2)}% (target <= 2%: ${size <= 0.02 ? 'met' : 'MISSED'})`);
    say(`    first write to a page: untracked ${untracked.toFixed(0)} ns, tracked ${tracked.toFixed(0)} ns (+${(tracked - untracked).toFixed(0)} ns)`);
    return down <= 0.1 && size <= 0.02;
  } finally {
    try {
      process.kill(pid, 'SIGKILL');
      waitTask(pid);
    } catch {
      /* gone */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const k = check();
const wanted = (process.env.STASIS_BENCH_TRACK ?? ['uffd', 'soft-dirty', 'hash'].join(',')).split(',');
say(`stasis incremental bench: ${MIB} MiB, 1% of pages dirtied after a pre-dump, ${os.cpus().length} CPUs, kernel ${os.release()}`);
let ok = true;
for (const b of wanted) {
  if (k.trackingUnavailable[b]) {
    say(`  backend ${b}: skipped, ${k.trackingUnavailable[b]}`);
    continue;
  }
  // The targets are for trackers that know without reading (uffd, soft-dirty); hash re-reads all.
  const met = run(b);
  if (b !== 'hash') ok &&= met;
}
fs.rmSync(work, { recursive: true, force: true });
process.exitCode = ok ? 0 : 1;
