// zdtm-style harness: a workload builds its state, writes `ready`, and waits for `go`; the
// test dumps and restores it in between; the workload then checks itself and writes `result`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnTask, waitPid, kill, type Stdio, type WaitResult } from '../../src/sys/index.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const made: string[] = [];
const BUILD = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-wl-'));
made.push(BUILD);

/** Compiles test/workloads/NAME.c with gcc (once per run). gcc itself is run through child_process: it is never traced. */
export function compileWorkload(name: string, extra: string[] = []): string {
  const out = path.join(BUILD, name);
  if (!fs.existsSync(out)) {
    execFileSync('gcc', ['-O2', '-Wall', '-o', out, path.join(REPO, 'test/workloads', `${name}.c`), ...extra], { stdio: 'inherit' });
  }
  return out;
}

/** A directory of the test's own under the system's temporary directory, removed when the test file's process exits (STASIS_KEEP_TMP=1 keeps them). */
export function tmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `stasis-${prefix}-`));
  made.push(d);
  return d;
}

/** Removes the test's directories, but for one that still has a mount inside (its contents are not the test's to remove). */
function removeTmpDirs(): void {
  if (process.env.STASIS_KEEP_TMP) return;
  let mounts: string[] = [];
  try {
    mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '');
  } catch {
    /* no /proc: keep nothing mounted in mind */
  }
  for (const d of made) {
    if (mounts.some((m) => m === d || m.startsWith(`${d}/`))) continue;
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* a file still busy: left */
    }
  }
}

/** A copy of image set `images` whose pages-1.img has a bit of its last byte flipped: the copy and that byte's offset. */
export function copyWithLastPageByteFlipped(images: string, prefix: string): { dir: string; at: number } {
  return copyWithPagesByteFlipped(images, prefix);
}

/** A copy of the image set `images` whose pages-1.img has one bit of byte `at` (default: its last) flipped (`mask`). */
export function copyWithPagesByteFlipped(images: string, prefix: string, at?: number, mask = 0x10): { dir: string; at: number } {
  const dir = tmpDir(prefix);
  for (const f of fs.readdirSync(images)) fs.copyFileSync(path.join(images, f), path.join(dir, f));
  const fd = fs.openSync(path.join(dir, 'pages-1.img'), 'r+');
  try {
    const b = Buffer.alloc(1);
    const where = at ?? fs.fstatSync(fd).size - 1;
    fs.readSync(fd, b, 0, 1, where);
    b[0]! ^= mask;
    fs.writeSync(fd, b, 0, 1, where);
    return { dir, at: where };
  } finally {
    fs.closeSync(fd);
  }
}

export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 20000): T {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    sleepMs(5);
  }
}

/** Every workload this test file started: killed with their descendants when the file's process exits. */
const started = new Set<number>();

/** Every descendant of `pid`, read before any is killed (a killed parent's children move to init). */
export function descendants(pid: number): number[] {
  let kids: number[] = [];
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      kids.push(...fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {
    /* gone */
  }
  kids = kids.flatMap((k) => [k, ...descendants(k)]);
  return kids;
}

// A test that fails midway leaves its workload (restored or not) behind: nothing may stay on
// the machine, and neither may the images and work directories of the tests.
process.on('exit', () => {
  for (const pid of started) {
    for (const p of [pid, ...descendants(pid)]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  removeTmpDirs();
});

export class Workload {
  readonly dir: string;
  pid = 0;
  /** argv is [binary, ...pre, dir, ...args]: `pre` carries an interpreter's script. */
  constructor(readonly name: string, readonly binary: string, readonly args: string[] = [], readonly pre: string[] = []) {
    this.dir = tmpDir(name);
  }
  /**
   * `setsid`: the workload leads a session of its own. CRIU needs it for a tree it dumps when
   * this process's session leader is outside its pid namespace (getsid() is 0, as under CI's
   * `unshare -p`): "A session leader of PID is outside of its pid namespace".
   */
  start(opts: { setsid?: boolean; stdin?: Stdio; stdout?: Stdio } = {}): this {
    this.pid = spawnTask([this.binary, ...this.pre, this.dir, ...this.args], {
      cwd: this.dir,
      setsid: opts.setsid ?? false,
      stdin: opts.stdin ?? { path: '/dev/null' },
      stdout: opts.stdout ?? { path: path.join(this.dir, 'stdout.log') },
      stderr: { path: path.join(this.dir, 'stderr.log') },
    });
    started.add(this.pid);
    waitFor(`${this.name} ready`, () => fs.existsSync(path.join(this.dir, 'ready')));
    return this;
  }
  file(name: string): string {
    return path.join(this.dir, name);
  }
  go(): void {
    fs.writeFileSync(this.file('go'), '');
  }
  /** Waits for the workload (a child of this process) to exit; returns its result line. */
  finish(timeoutMs = 30000): { result: string; exit: WaitResult } {
    const until = Date.now() + timeoutMs;
    let w: WaitResult | null = null;
    while (!(w = waitPid(this.pid, true))) {
      if (Date.now() > until) {
        kill(this.pid, 9);
        w = waitPid(this.pid);
        break;
      }
      sleepMs(5);
    }
    started.delete(this.pid);
    const res = fs.existsSync(this.file('result')) ? fs.readFileSync(this.file('result'), 'utf8').trim() : '(no result)';
    const err = fs.existsSync(this.file('stderr.log')) ? fs.readFileSync(this.file('stderr.log'), 'utf8') : '';
    return { result: err ? `${res}\n${err}` : res, exit: w as WaitResult };
  }
  kill(): void {
    started.delete(this.pid);
    try {
      kill(this.pid, 9);
      // Waited for: until it is reaped it may still hold its ports and files for the next workload.
      waitPid(this.pid);
    } catch {
      /* gone */
    }
  }
}

/** The raw /proc/PID/pagemap entries of `n` pages from `addr` (PFNs need root, as the suite runs). */
export function pagemapEntries(pid: number, addr: bigint, n = 1): bigint[] {
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const b = Buffer.alloc(n * 8);
    fs.readSync(fd, b, 0, b.length, Number(addr / 4096n) * 8);
    return Array.from({ length: n }, (_, i) => b.readBigUInt64LE(i * 8));
  } finally {
    fs.closeSync(fd);
  }
}

/** The page frame a present page of pid is in (0 where none is). */
export function pageFrame(pid: number, addr: bigint): bigint {
  const e = pagemapEntries(pid, addr)[0]!;
  return e >> 63n ? e & ((1n << 55n) - 1n) : 0n;
}

/** Exit 0 with PASS in the result file, or a readable failure. */
export function assertPassed(r: { result: string; exit: WaitResult }): void {
  if (!(r.exit.kind === 'exited' && r.exit.code === 0 && r.result.startsWith('PASS'))) {
    throw new Error(`Workload failed: ${JSON.stringify(r.exit)}: ${r.result}`);
  }
}

import assert from 'node:assert/strict';
import { critAvailable, critDecodeAll } from '../../src/image/crit.js';
import { readImageFile, encodeImage, isRawImage } from '../../src/image/index.js';
import { SUMS_FILE, verifySums, type SumsFile } from '../../src/image/image-sums.js';
import { dump, restore, StasisError } from '../../src/api/index.js';
import type { DumpOptions, DumpResult, RestoreResult } from '../../src/api/index.js';

const HAVE_CRIT = critAvailable();
let critNoted = false;

/**
 * Every image of a dump decodes with crit (CRIU's own reader), and our decoder re-encodes
 * each one to the same bytes. Without crit (a machine without Debian's criu) the crit half
 * is skipped with a note; .ci/run installs it, so CI always checks.
 */
export function verifyImages(dir: string): void {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.img') && !isRawImage(f));
  assert.ok(files.includes('inventory.img'), `no inventory.img in ${dir}`);
  // Images hold the task's memory: nobody but their owner reads them.
  for (const f of fs.readdirSync(dir)) {
    const st = fs.lstatSync(path.join(dir, f));
    if (st.isFile()) assert.equal(st.mode & 0o777, 0o600, `${f} has mode ${(st.mode & 0o777).toString(8)}`);
  }
  // Every file but the tracking state is checksummed, and the sums hold.
  const sums = JSON.parse(fs.readFileSync(path.join(dir, SUMS_FILE), 'utf8')) as SumsFile;
  for (const f of fs.readdirSync(dir)) {
    if (f === SUMS_FILE || f === 'stasis-track.json' || /^stasis-hashes-\d+\.bin$/.test(f) || !fs.lstatSync(path.join(dir, f)).isFile()) continue;
    assert.ok(sums.files[f], `${f} is not in ${SUMS_FILE}`);
  }
  verifySums(dir);
  for (const f of files) {
    const file = path.join(dir, f);
    const bytes = fs.readFileSync(file);
    const img = readImageFile(file, { compat: false });
    assert.deepEqual(Buffer.from(encodeImage(img.kind, img.content as never)), bytes, `${f} does not re-encode to the same bytes`);
  }
  if (HAVE_CRIT) critDecodeAll(files.map((f) => path.join(dir, f)));
  if (!HAVE_CRIT && !critNoted) {
    critNoted = true;
    process.stderr.write('note: crit is not installed (apt-get install criu): images were not checked against it\n');
  }
}

/** Dumps a workload (killing it), checks the images, restores it detached. */
export async function checkpointRestore(w: Workload, opts: { shellJob?: boolean; dump?: Partial<DumpOptions> } = {}): Promise<{ images: string; d: DumpResult; r: RestoreResult }> {
  const images = tmpDir(`${w.name}-img`);
  const d = await dump({ ...opts.dump, pid: w.pid, imagesDir: images, shellJob: opts.shellJob ?? false });
  // dump() killed the task and, as its tracer and parent, reaped it: the pid is free.
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the dumped task is still there');
  verifyImages(images);
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  return { images, d, r };
}

/**
 * Dumps with --leave-running and lets the workload, never restored, check its own state
 * (the dump must have left it exactly as it was); then, once it has exited, restores the same
 * images and lets the restored workload check itself again.
 */
export async function leaveRunningThenRestore(w: Workload, checkImages: (dir: string) => void = () => {}, opts: Partial<DumpOptions> = {}): Promise<void> {
  const images = tmpDir(`${w.name}-img`);
  await dump({ ...opts, pid: w.pid, imagesDir: images, leaveRunning: true });
  verifyImages(images);
  checkImages(images);
  w.go();
  assertPassed(w.finish());
  fs.rmSync(w.file('result'));
  // It has exited (and been reaped): its pid is free for the image to come back at.
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  assertPassed(w.finish());
}

/**
 * A dump of `w` that must be refused: it rejects with a StasisError of `code` whose message
 * matches every pattern, leaves no image behind, and leaves each of `pids` (default: the
 * workload) untraced.
 */
export async function assertDumpRefused(w: Workload, code: string, patterns: RegExp[], pids: number[] = [w.pid]): Promise<StasisError> {
  const images = tmpDir(`${w.name}-img`);
  let caught: StasisError | undefined;
  await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
    assert.ok(e instanceof StasisError, String(e));
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    caught = e;
    return true;
  });
  assert.deepEqual(fs.readdirSync(images), [], 'the failed dump left images behind');
  for (const p of pids) assert.match(fs.readFileSync(`/proc/${p}/status`, 'utf8'), /TracerPid:\s+0\n/);
  return caught!;
}
