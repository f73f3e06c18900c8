// The side-by-side table of issue 15: stasis's command line against CRIU 4.2 on the same victim,
// alternating, medians of several runs, as ratios (CRIU's time is the baseline: 2.00x means
// stasis takes twice as long). CRIU is ../shared/criu/criu beside the repo, or $STASIS_CRIU;
// without it the CRIU lines are skipped with the reason. STASIS_BENCH_RUNS (default 5) runs of
// each small step, STASIS_BENCH_BIG_RUNS (default 3) of the 1 GiB ones, STASIS_BENCH_BIG_MIB
// their size (default 1024). Each restored victim checks its memory (outside the timing).
// STASIS_BENCH_ONLY=lazy runs only the --lazy-pages rows, STASIS_BENCH_ONLY=small only the
// start-up and 16 MiB rows, STASIS_BENCH_ONLY=big only the BIG_MIB dump and restore. The 16 MiB process is also dumped and restored through
// `stasis service` and `criu service` (CRIU's RPC, one connection per request, as libcriu
// does), each resident and warmed by one untimed cycle, against CRIU's command line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { rpcRun } from './rpc.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STASIS = path.join(REPO, 'bin/stasis.js');
const RUNS = Number(process.env.STASIS_BENCH_RUNS ?? 5);
const BIG_RUNS = Number(process.env.STASIS_BENCH_BIG_RUNS ?? 3);
const BIG_MIB = Number(process.env.STASIS_BENCH_BIG_MIB ?? 1024);
const ONLY = process.env.STASIS_BENCH_ONLY;
const say = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
// Images on tmpfs, so that the disk's writeback is not what is measured.
const shm = fs.statSync('/dev/shm', { throwIfNoEntry: false })?.isDirectory() ? '/dev/shm' : os.tmpdir();
const work = fs.mkdtempSync(path.join(shm, 'stasis-bench-criu-'));

function findCriu(): { bin?: string; why?: string } {
  const bin = process.env.STASIS_CRIU ?? path.resolve(REPO, '../shared/criu/criu');
  if (!fs.existsSync(bin)) return { why: `no CRIU at ${bin} (set STASIS_CRIU)` };
  const r = spawnSync(bin, ['check'], { encoding: 'utf8' });
  if (r.status !== 0) return { why: `${bin} check failed: ${(r.stderr || r.stdout).trim().split('\n').at(-1) ?? ''}` };
  return { bin };
}

function waitFile(f: string, ms = 300000): void {
  const until = Date.now() + ms;
  while (!fs.existsSync(f)) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${f}`);
    sleep(5);
  }
}

function gone(pid: number): void {
  const until = Date.now() + 30000;
  // Gone, not a zombie: a restore needs its pid free.
  while (fs.existsSync(`/proc/${pid}`)) {
    if (Date.now() > until) throw new Error(`pid ${pid} did not go away`);
    sleep(5);
  }
}

/**
 * A victim CRIU can dump: a session of its own, stdio on /dev/null, its files in DIR; not the
 * bench's child (the shell that starts it exits), so that its pid is free once it is killed.
 */
function victim(bin: string, mib: number, dir: string, extra = ''): number {
  fs.mkdirSync(dir, { recursive: true });
  // Without the fds the bench itself inherited (a pipe of the shell that started it is refused: its reader is outside the tree).
  const close = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-"; done; ';
  const out = execFileSync('bash', ['-c', `${close}cd "$1" || exit 1; setsid "$2" "$1" "$3" $4 </dev/null >/dev/null 2>&1 & echo $!`, 'sh', dir, bin, String(mib), extra], { encoding: 'utf8' });
  waitFile(path.join(dir, 'ready'));
  return Number(out.trim());
}

// The CLI is run as a user runs it, bin/stasis.js itself: its launcher drops NODE_EXTRA_CA_CERTS
// (Node 20 reads the whole CA store at start-up when it is set, as this sandbox sets it: 35-60
// ms), so Node's own start-up is measured without it too.
const CA = process.env.NODE_EXTRA_CA_CERTS;
const NO_CA = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

function timed(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t = performance.now();
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${path.basename(file)} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return ms;
}

type Tool = 'stasis' | 'criu' | 'stasis-service' | 'criu-service';
/** The services' sockets, once started (startServices()). */
const address: Partial<Record<Tool, string>> = {};
const services: ChildProcess[] = [];

/** `stasis service` and `criu service` on sockets of their own, resident for the small rows. */
function startServices(): void {
  if (services.length) return;
  for (const [tool, cmd] of [['stasis-service', [process.execPath, STASIS]], ['criu-service', [criu.bin ?? '']]] as const) {
    const sock = path.join(work, `${tool}.sock`);
    const child = spawn(cmd[0], [...cmd.slice(1), 'service', '--address', sock], { stdio: 'ignore', cwd: work });
    services.push(child);
    process.on('exit', () => child.kill('SIGKILL'));
    const until = Date.now() + 30000;
    while (!fs.statSync(sock, { throwIfNoEntry: false })?.isSocket()) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`${tool} did not start listening on ${sock}`);
      sleep(10);
    }
    address[tool] = sock;
  }
}

function stopServices(): void {
  for (const c of services.splice(0)) c.kill('SIGTERM');
  for (const k of Object.keys(address) as Tool[]) delete address[k];
}

/** One dump (or restore) by TOOL, timed: a command, or a request to a resident service. */
function timedRun(tool: Tool, what: 'dump' | 'restore', images: string, pid: number, leave: boolean): number {
  const sock = address[tool];
  if (tool === 'stasis-service' || tool === 'criu-service') {
    if (!sock) throw new Error(`${tool} is not running`);
    const t = performance.now();
    rpcRun(sock, what, images, pid);
    return performance.now() - t;
  }
  return what === 'dump' ? timed(...dumpArgs(tool, pid, images, leave)) : timed(...restoreArgs(tool, images));
}
function dumpArgs(tool: 'stasis' | 'criu', pid: number, images: string, leave: boolean): [string, string[]] {
  const more = leave ? ['-R'] : [];
  return tool === 'stasis'
    ? [STASIS, ['dump', '-t', String(pid), '-D', images, ...more]]
    : [criu.bin ?? '', ['dump', '-t', String(pid), '-D', images, '-o', 'dump.log', ...more]];
}
function restoreArgs(tool: 'stasis' | 'criu', images: string): [string, string[]] {
  return tool === 'stasis'
    ? [STASIS, ['restore', '-D', images, '-d']]
    : [criu.bin ?? '', ['restore', '-D', images, '-d', '-o', 'restore.log']];
}

/**
 * This machine gives freed memory back to its host (free page reporting), and memory that
 * comes back costs several times more to touch the first time (KERNEL-NOTES: 0.36-0.43 GB/s
 * against 2.2-2.4). Which of the two tools met such memory decided a large row more than the
 * tools did (the same 1 GiB dump 0.96x in one run and 0.81x in the next, the restore 3.52x,
 * then 0.65x). Before each timed step of a large row, both tools get the same: MIB MiB written
 * to tmpfs and freed again at once, so that the step finds that much memory warm.
 */
function warm(mib: number): void {
  if (mib < WARM_FROM_MIB) return;
  const f = path.join(work, 'warm');
  execFileSync('dd', ['if=/dev/zero', `of=${f}`, 'bs=1M', `count=${2 * mib}`], { stdio: 'ignore' });
  fs.rmSync(f);
}
const WARM_FROM_MIB = 256;

/** One dump and restore of a fresh victim by TOOL; the restored victim checks its memory. */
function cycle(tool: Tool, bin: string, mib: number, leave: boolean, n: number): { dump: number; restore: number } {
  const dir = path.join(work, `${tool}-${mib}-${n}`);
  const images = path.join(dir, 'images');
  fs.mkdirSync(images, { recursive: true });
  const pid = victim(bin, mib, dir);
  warm(mib);
  const dump = timedRun(tool, 'dump', images, pid, leave);
  if (leave) process.kill(pid, 'SIGKILL');
  gone(pid);
  warm(mib);
  const restore = timedRun(tool, 'restore', images, pid, leave);
  fs.writeFileSync(path.join(dir, 'go'), '');
  waitFile(path.join(dir, 'result'));
  const result = fs.readFileSync(path.join(dir, 'result'), 'utf8').trim().split('\n')[0];
  gone(pid);
  if (result !== 'PASS') throw new Error(`${tool}: the restored victim found its memory wrong: ${result}`);
  fs.rmSync(dir, { recursive: true, force: true });
  return { dump, restore };
}

const median = (a: number[]) => {
  const b = [...a].sort((x, y) => x - y);
  const m = b.length >> 1;
  return b.length % 2 ? b[m] ?? NaN : ((b[m - 1] ?? NaN) + (b[m] ?? NaN)) / 2;
};

const criu = findCriu();
const rows: [string, string, number, number][] = [];

// Start-up: `stasis --help` and `stasis -V` against bare `node -e 0`, alternating.
if (!ONLY || ONLY === 'small') {
  const t: Record<string, number[]> = { node: [], help: [], version: [], nodeCa: [] };
  for (let i = 0; i < 10; i++) {
    t.node?.push(timed(process.execPath, ['-e', '0'], NO_CA));
    if (CA !== undefined) t.nodeCa?.push(timed(process.execPath, ['-e', '0']));
    t.help?.push(timed(STASIS, ['--help']));
    t.version?.push(timed(STASIS, ['-V']));
  }
  rows.push(['`stasis --help` start-up', 'node -e 0', median(t.node ?? []), median(t.help ?? [])]);
  rows.push(['`stasis -V` start-up', 'node -e 0', median(t.node ?? []), median(t.version ?? [])]);
  if (CA !== undefined) rows.push(['`node -e 0` with NODE_EXTRA_CA_CERTS set (as here; the launcher drops it)', 'node -e 0 without it', median(t.node ?? []), median(t.nodeCa ?? [])]);
}

const skipped: string[] = [];
if (criu.bin && (!ONLY || ONLY === 'small' || ONLY === 'big')) {
  const bin = path.join(work, 'bigheap');
  execFileSync('gcc', ['-O2', '-o', bin, path.join(REPO, 'test/workloads/bigheap.c')]);
  const svc: Tool[] = ['stasis-service', 'criu-service'];
  if (ONLY !== 'big') {
    startServices();
    for (const tool of svc) cycle(tool, bin, 16, false, -1); // warm-up, untimed
  }
  const cases = [['16 MiB process', '16 MiB process', 16, false, RUNS, svc],
    [`${BIG_MIB} MiB dirty anonymous (-R, to tmpfs)`, `${BIG_MIB} MiB dirty anonymous`, BIG_MIB, true, BIG_RUNS, []]] as const;
  for (const [label, restoreLabel, mib, leave, runs, more] of cases) {
    if ((ONLY === 'small' && mib !== 16) || (ONLY === 'big' && mib === 16)) continue;
    const t: Partial<Record<Tool, { dump: number[]; restore: number[] }>> = {};
    const tools: Tool[] = ['stasis', 'criu', ...more];
    for (let i = 0; i < runs; i++) {
      // Alternating, and the order rotates from one run to the next.
      for (let k = 0; k < tools.length; k++) {
        const tool = tools[(k + i) % tools.length]!;
        const r = cycle(tool, bin, mib, leave, i);
        const into = (t[tool] ??= { dump: [], restore: [] });
        into.dump.push(r.dump);
        into.restore.push(r.restore);
      }
    }
    const m = (tool: Tool, what: 'dump' | 'restore') => median(t[tool]?.[what] ?? []);
    rows.push([`dump of ${label} (target <= ${mib === 16 ? '1.50' : '0.50'}x)`, 'CRIU 4.2', m('criu', 'dump'), m('stasis', 'dump')]);
    rows.push([`restore of ${restoreLabel} (target <= ${mib === 16 ? '1.50' : '1.00'}x)`, 'CRIU 4.2', m('criu', 'restore'), m('stasis', 'restore')]);
    if (more.length) {
      rows.push([`dump of ${label} through \`stasis service\` (target <= 1.00x)`, 'CRIU 4.2', m('criu', 'dump'), m('stasis-service', 'dump')]);
      rows.push([`restore of ${restoreLabel} through \`stasis service\` (target <= 1.00x)`, 'CRIU 4.2', m('criu', 'restore'), m('stasis-service', 'restore')]);
      rows.push([`dump of ${label} through \`stasis service\``, '`criu service`', m('criu-service', 'dump'), m('stasis-service', 'dump')]);
      rows.push([`restore of ${restoreLabel} through \`stasis service\``, '`criu service`', m('criu-service', 'restore'), m('stasis-service', 'restore')]);
    }
  }
  stopServices();
} else if (!criu.bin) {
  skipped.push(`dump and restore against CRIU skipped: ${criu.why ?? ''}`);
}

/**
 * restore --lazy-pages against CRIU's plain restore of the same BIG_MIB (CRIU's own lazy
 * restore needs its lazy-pages daemon and a page server: not what a user runs), and against
 * stasis's plain restore. The victim (lazymem, four areas checked by four threads) was told
 * to go before the restore, so it stamps the time it first runs and the time its first full
 * pass over its memory is done (CLOCK_REALTIME); both are taken from the restore's start.
 */
type LazyKind = 'criu' | 'stasis' | 'lazy' | 'lazy-service';
function lazyCycle(kind: LazyKind, bin: string, mib: number, n: number): { command: number; running: number; pass: number } {
  const dir = path.join(work, `lazy-${kind}-${n}`);
  const images = path.join(dir, 'images');
  fs.mkdirSync(images, { recursive: true });
  const pid = victim(bin, mib, dir, 'plain');
  const tool: Tool = kind === 'criu' ? 'criu' : 'stasis';
  timed(...dumpArgs(tool, pid, images, false));
  gone(pid);
  fs.writeFileSync(path.join(dir, 'go'), '');
  warm(mib);
  const [file, args] = restoreArgs(tool, images);
  const t0 = performance.timeOrigin + performance.now();
  let command: number;
  if (kind === 'lazy-service') {
    const t = performance.now();
    rpcRun(address['stasis-service']!, 'restore', images, 0, true);
    command = performance.now() - t;
  } else {
    command = timed(file, kind === 'lazy' ? [...args, '--lazy-pages'] : args);
  }
  waitFile(path.join(dir, 'result'));
  const stamp = (f: string) => Number(BigInt(fs.readFileSync(path.join(dir, f), 'utf8').trim()) / 1000n) / 1000 - t0;
  const result = fs.readFileSync(path.join(dir, 'result'), 'utf8').trim().split('\n')[0];
  const out = { command, running: stamp('ran'), pass: stamp('verified') };
  gone(pid);
  if (result !== 'PASS') throw new Error(`${kind}: the restored victim found its memory wrong: ${result}`);
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

if (criu.bin && (!ONLY || ONLY === 'lazy')) {
  const bin = path.join(work, 'lazymem');
  execFileSync('gcc', ['-O2', '-o', bin, path.join(REPO, 'test/workloads/lazymem.c'), '-lpthread']);
  type Times = { command: number; running: number; pass: number };
  const t: Record<LazyKind, Times[]> = { criu: [], stasis: [], lazy: [], 'lazy-service': [] };
  startServices();
  lazyCycle('lazy-service', bin, BIG_MIB, -1); // the service warmed by one untimed restore, as for the small rows
  for (let i = 0; i < BIG_RUNS; i++) {
    const order = (['criu', 'stasis', 'lazy', 'lazy-service'] as const).map((_, k, a) => a[(k + i) % a.length]!);
    for (const kind of order) t[kind].push(lazyCycle(kind, bin, BIG_MIB, i));
  }
  const m = (k: keyof typeof t, f: 'command' | 'running' | 'pass') => median(t[k].map((x) => x[f]));
  rows.push([`restore of ${BIG_MIB} MiB to running, plain`, 'CRIU 4.2 to running', m('criu', 'running'), m('stasis', 'running')]);
  rows.push([`restore --lazy-pages of ${BIG_MIB} MiB to running (target <= 0.10x)`, 'CRIU 4.2 restore', m('criu', 'command'), m('lazy', 'running')]);
  rows.push([`restore --lazy-pages of ${BIG_MIB} MiB to running, through \`stasis service\``, 'CRIU 4.2 restore', m('criu', 'command'), m('lazy-service', 'running')]);
  // The victim's own pass takes time of its own: compared with its pass after CRIU's restore,
  // and with CRIU's restore alone (which no pass can beat unless the pass is free).
  rows.push([`restore --lazy-pages: first full pass over memory done (target <= 1.00x)`, 'CRIU 4.2 restore, then the pass', m('criu', 'pass'), m('lazy', 'pass')]);
  rows.push([`restore --lazy-pages: first full pass over memory done`, 'CRIU 4.2 restore alone', m('criu', 'command'), m('lazy', 'pass')]);
  rows.push([`restore --lazy-pages: the command (-d, returns when all is in)`, 'CRIU 4.2 restore', m('criu', 'command'), m('lazy', 'command')]);
  stopServices();
  rows.push([`restore of ${BIG_MIB} MiB, first full pass over memory done, plain`, 'CRIU 4.2 restore, then the pass', m('criu', 'pass'), m('stasis', 'pass')]);
} else if (!criu.bin) {
  skipped.push(`restore --lazy-pages against CRIU skipped: ${criu.why ?? ''}`);
}

const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
say(`stasis vs CRIU 4.2 (medians; ${RUNS} small / ${BIG_RUNS} large runs each, alternating; ${os.cpus().length} CPUs, load ${load})`);
say(`| work | baseline | baseline ms | stasis ms | stasis / baseline |`);
say(`|---|---|---:|---:|---:|`);
for (const [what, base, b, st] of rows) say(`| ${what} | ${base} | ${b.toFixed(0)} | ${st.toFixed(0)} | ${(st / b).toFixed(2)}x |`);
for (const s of skipped) say(`  ${s}`);
if (!ONLY || ONLY !== 'small') say(`  (steps of ${WARM_FROM_MIB} MiB and more start, for either tool, with twice their size in memory just written and freed: warm())`);
fs.rmSync(work, { recursive: true, force: true });
