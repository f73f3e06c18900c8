// The library does not block its host: dump(), preDump() and restore() run in the engine
// thread, their progress, log lines and notify points reach the caller as events, an
// AbortSignal cancels a dump with the tree left as it was, and a restored tree's exit is a
// promise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Workload, compileWorkload, tmpDir, assertPassed } from '../harness.js';
import { dump, preDump, restore, startEngine, StasisError, type Log, type LogLevel, type NotifyEvent, type Progress } from '../../../src/api/index.js';

/** This thread's time on a CPU, and waiting on a run queue (runnable, but another thread had the CPU), in ms. */
function schedMs(): { run: number; wait: number } {
  const [run, wait] = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map((n) => Number(n) / 1e6);
  return { run: run ?? 0, wait: wait ?? 0 };
}

/**
 * The largest gap between ticks of a 10 ms timer while `work` runs; and the largest once the
 * time this thread waited for a CPU is taken out of each gap (a loaded machine delays a
 * runnable thread; what is left is the time the loop was busy or blocked).
 */
async function maxTimerGap<T>(work: () => Promise<T>): Promise<{
  value: T; maxGapMs: number; maxOwnGapMs: number; ticks: number; gaps: string[]; cpuMs: number; otherThreadsCpuMs: number;
}> {
  const t0 = performance.now();
  const s0 = schedMs();
  const c0 = process.cpuUsage();
  let last = t0;
  let lastWait = s0.wait;
  let maxGapMs = 0;
  let maxOwnGapMs = 0;
  let ticks = 0;
  const gaps: string[] = [];
  const tick = () => {
    const now = performance.now();
    const { wait } = schedMs();
    const own = now - last - (wait - lastWait);
    if (now - last > 40 && gaps.length < 8) gaps.push(`${(now - last).toFixed(0)} ms (${own.toFixed(0)}) at ${(last - t0).toFixed(0)} ms`);
    maxGapMs = Math.max(maxGapMs, now - last);
    maxOwnGapMs = Math.max(maxOwnGapMs, own);
    last = now;
    lastWait = wait;
  };
  const t = setInterval(() => {
    tick();
    ticks++;
  }, 10);
  try {
    const value = await work();
    tick();
    const cpuMs = schedMs().run - s0.run;
    const c = process.cpuUsage(c0);
    return { value, maxGapMs, maxOwnGapMs, ticks, gaps, cpuMs, otherThreadsCpuMs: (c.user + c.system) / 1000 - cpuMs };
  } finally {
    clearInterval(t);
  }
}

/** The state letter of /proc/PID/stat and the TracerPid of /proc/PID/status. */
/**
 * The task runs none of its own code: it is in a ptrace stop, or in the call stasis injected
 * into it to copy its pages (its own vmsplice, or its own pwritev into the pages file:
 * /proc/PID/syscall names the call it is in). Between the two it passes through its `syscall` instruction, which
 * /proc shows as running: read again for up to 100 ms, until one of the two is seen. A task
 * let go (a dump that resumed it, or detached) shows neither, ever: it sleeps in its own
 * clock_nanosleep, waiting for its go file.
 */
function frozenOrInjected(pid: number): boolean {
  const until = performance.now() + 100;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  do {
    const st = taskState(pid);
    if (st.state === 't') return true;
    // In the injected call that copies its pages: vmsplice (278), or its own pwritev (296,
    // task-write.ts); that copy runs on its CPU (R), where /proc says "running", not the call,
    // and between two calls it is stopped for µs only: traced and running is that call.
    const sc = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8');
    if (/^(278|296) /.test(sc) || (st.tracer !== 0 && st.state === 'R' && sc.startsWith('running'))) return true;
    Atomics.wait(nap, 0, 0, 0.2);
  } while (performance.now() < until);
  return false;
}

function taskState(pid: number): { state: string; tracer: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
  const tracer = Number(/^TracerPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return { state, tracer };
}

/** SHA-256 of the workload's heap, read from outside (bigheap writes where it is to `sum`). */
function heapHash(w: Workload): string {
  const [, addr, len] = fs.readFileSync(w.file('sum'), 'utf8').trim().split(' ');
  const fd = fs.openSync(`/proc/${w.pid}/mem`, 'r');
  try {
    const h = crypto.createHash('sha256');
    const buf = Buffer.alloc(4 << 20);
    const end = Number(BigInt(`0x${addr}`) + BigInt(`0x${len}`));
    for (let at = Number(BigInt(`0x${addr}`)); at < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - at), at);
      assert.ok(n > 0, 'short read of the heap');
      h.update(buf.subarray(0, n));
      at += n;
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

class ListLog implements Log {
  readonly lines: string[] = [];
  constructor(readonly level: LogLevel) {}
  error(m: string): void { this.lines.push(`E ${m}`); }
  warn(m: string): void { this.lines.push(`W ${m}`); }
  info(m: string): void { this.lines.push(`I ${m}`); }
  debug(m: string): void { this.lines.push(`D ${m}`); }
}

test('the event loop keeps ticking (10 ms timer) while a 256 MiB dump runs, and its progress arrives as events', async (t) => {
  const w = new Workload('nb-heap', compileWorkload('bigheap'), ['256']).start();
  const images = tmpDir('nb-heap-img');
  const progress: Progress[] = [];
  const started = await maxTimerGap(() => startEngine());
  const { value: d, maxGapMs, maxOwnGapMs, ticks, gaps, cpuMs, otherThreadsCpuMs } = await maxTimerGap(() => dump({ pid: w.pid, imagesDir: images, onProgress: (p) => progress.push(p) }));
  t.diagnostic(`256 MiB dump: ${d.totalMs.toFixed(0)} ms, ${ticks} timer ticks, max gap between them ${maxGapMs.toFixed(1)} ms (${maxOwnGapMs.toFixed(1)} ms without waiting for a CPU), ${progress.length} progress events; the first gaps over 40 ms (without waiting for a CPU): ${gaps.join(', ') || 'none'}`);
  t.diagnostic(`CPU during the dump: ${cpuMs.toFixed(0)} ms on this thread, ${otherThreadsCpuMs.toFixed(0)} ms on the others (the engine's)`);
  t.diagnostic(`while the engine thread started: max gap ${started.maxGapMs.toFixed(1)} ms (${started.maxOwnGapMs.toFixed(1)} ms without waiting for a CPU)`);
  assert.ok(d.pagesWritten >= 65536, `only ${d.pagesWritten} pages written`);
  // A dump on this thread would stall it for the whole dump (seconds), running or blocked,
  // and would spend its CPU here.
  assert.ok(cpuMs < otherThreadsCpuMs / 4, `this thread spent ${cpuMs.toFixed(0)} ms of CPU during the dump, the others ${otherThreadsCpuMs.toFixed(0)} ms`);
  assert.ok(maxGapMs < d.totalMs / 3, `the event loop stalled for ${maxGapMs.toFixed(1)} ms of a ${d.totalMs.toFixed(0)} ms dump`);
  assert.ok(maxOwnGapMs < 100, `the event loop stalled for ${maxOwnGapMs.toFixed(1)} ms during the dump (${maxGapMs.toFixed(1)} ms with the time it waited for a CPU)`);
  assert.ok(ticks >= d.totalMs / 10 / 4, `only ${ticks} ticks in ${d.totalMs.toFixed(0)} ms`);
  assert.ok(progress.filter((p) => p.phase === 'writing memory').length >= 4, `progress: ${JSON.stringify(progress.map((p) => p.phase))}`);
  // The dump is a good one: restored, the heap checks itself.
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});

for (const leaveRunning of [false, true]) {
  test(`an AbortSignal cancels a dump${leaveRunning ? ' --leave-running' : ''} mid-memory: the tree runs on untraced, its memory unchanged`, async () => {
    const w = new Workload('nb-abort', compileWorkload('bigheap'), ['128']).start();
    const before = heapHash(w);
    const images = tmpDir('nb-abort-img');
    const ac = new AbortController();
    const phases: string[] = [];
    const { value: err } = await maxTimerGap(() => dump({
      pid: w.pid, imagesDir: images, leaveRunning, signal: ac.signal,
      onProgress: (p) => {
        phases.push(p.phase);
        // Mid-dump: the tree is frozen and part of its memory is written. (Once: the progress
        // events already on their way may arrive after the abort, once the tree runs again.)
        if (p.phase === 'writing memory' && !ac.signal.aborted) {
          assert.ok(frozenOrInjected(w.pid), 'the tree is not frozen while its memory is written');
          ac.abort();
        }
      },
    }).then(() => null, (e: unknown) => e));
    assert.ok(err instanceof StasisError && err.code === 'E_ABORTED', `the dump was not cancelled: ${String(err)} after ${phases.join(', ')}`);
    // Running (asleep in its poll for `go`), traced by nobody, nothing of the images left.
    const st = taskState(w.pid);
    assert.notEqual(st.state, 't');
    assert.notEqual(st.state, 'Z');
    assert.equal(st.tracer, 0);
    assert.deepEqual(fs.readdirSync(images), []);
    assert.equal(heapHash(w), before);
    // It can be dumped again, and restored from that dump it checks its whole heap.
    await dump({ pid: w.pid, imagesDir: images });
    const r = await restore({ imagesDir: images, detach: true });
    assert.equal(r.pid, w.pid);
    w.go();
    assertPassed(w.finish());
  });
}

test('a signal aborted before the call rejects at once, and nothing is touched', async () => {
  const w = new Workload('nb-preabort', compileWorkload('bigheap'), ['1']).start();
  const images = tmpDir('nb-preabort-img');
  await assert.rejects(dump({ pid: w.pid, imagesDir: images, signal: AbortSignal.abort() }), (e: unknown) => e instanceof StasisError && e.code === 'E_ABORTED');
  assert.equal(taskState(w.pid).tracer, 0);
  w.go();
  assertPassed(w.finish());
});

test('restore() resolves while the restored tree runs; its exit is a promise', async () => {
  const w = new Workload('nb-restore', compileWorkload('bigheap'), ['4']).start();
  const images = tmpDir('nb-restore-img');
  await dump({ pid: w.pid, imagesDir: images });
  const restored: number[] = [];
  const r = await restore({ imagesDir: images, onRestored: (pid) => restored.push(pid) });
  assert.deepEqual(r.pids, [w.pid]);
  assert.deepEqual(restored, [w.pid]);
  // It runs (waiting for `go`), and this thread is free meanwhile.
  const { maxOwnGapMs } = await maxTimerGap(() => new Promise((res) => setTimeout(res, 200)));
  assert.ok(maxOwnGapMs < 100, `the event loop stalled for ${maxOwnGapMs.toFixed(1)} ms`);
  assert.notEqual(taskState(w.pid).state, 'Z');
  assert.equal(fs.existsSync(w.file('result')), false);
  w.go();
  assert.deepEqual(await r.wait(), { kind: 'exited', code: 0 });
  assert.equal(r.wait(), r.wait());
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the root was not reaped');
});

test('a detached restore is left alone until wait() is called', async () => {
  const w = new Workload('nb-detach', compileWorkload('bigheap'), ['1']).start();
  const images = tmpDir('nb-detach-img');
  await dump({ pid: w.pid, imagesDir: images });
  const r = await restore({ imagesDir: images, detach: true });
  w.go();
  assert.deepEqual(await r.wait(), { kind: 'exited', code: 0 });
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
});

test('notify callbacks are answered across the thread: the run waits for an async one, and a failing one fails it', async () => {
  const w = new Workload('nb-notify', compileWorkload('bigheap'), ['1']).start();
  const events: NotifyEvent[] = [];
  const log = new ListLog(4);
  await dump({
    pid: w.pid, imagesDir: tmpDir('nb-notify-img'), leaveRunning: true, log,
    notify: async (e) => {
      events.push(e);
      await new Promise((res) => setTimeout(res, 30));
      // The run waits on this callback: at post-dump the tree is still frozen.
      if (e === 'post-dump') assert.equal(taskState(w.pid).state, 't');
    },
  });
  assert.deepEqual(events, ['pre-dump', 'network-lock', 'post-dump', 'network-unlock']);
  assert.ok(log.lines.some((l) => /^I froze 1 task/.test(l)), log.lines.slice(0, 5).join('\n'));
  assert.ok(log.lines.some((l) => l.startsWith('D ')), 'no debug lines at level 4');

  const failed = await dump({
    pid: w.pid, imagesDir: tmpDir('nb-notify-fail-img'),
    notify: (e) => {
      if (e === 'post-dump') throw new Error('the client refuses');
    },
  }).then(() => null, (e: unknown) => e);
  assert.ok(failed instanceof StasisError && failed.code === 'E_DUMP_FAILED' && /the client refuses/.test(failed.message), String(failed));
  assert.equal(taskState(w.pid).tracer, 0);
  w.go();
  assertPassed(w.finish());
});

test('an AbortSignal cancels a pre-dump once the tree is frozen: it runs on untraced and untracked, and a later pre-dump works', async () => {
  const w = new Workload('nb-preabort-pd', compileWorkload('bigheap'), ['16']).start();
  const before = heapHash(w);
  const images = tmpDir('nb-pd-img');
  const ac = new AbortController();
  // The notify point holds the run: the abort is there before the tree is frozen and looked at.
  const err = await preDump({ pid: w.pid, imagesDir: images, signal: ac.signal, notify: (e) => { if (e === 'pre-dump') ac.abort(); } })
    .then(() => null, (e: unknown) => e);
  assert.ok(err instanceof StasisError && err.code === 'E_ABORTED', String(err));
  assert.match(err.message, /collecting/);
  assert.equal(taskState(w.pid).tracer, 0);
  assert.deepEqual(fs.readdirSync(images), []);
  assert.equal(heapHash(w), before);
  const again = await preDump({ pid: w.pid, imagesDir: images });
  assert.ok(again.pagesWritten >= 4096);
  const final = tmpDir('nb-pd-final');
  await dump({ pid: w.pid, imagesDir: final, prevImagesDir: images });
  await restore({ imagesDir: final, detach: true });
  w.go();
  assertPassed(w.finish());
});

test('an AbortSignal cancels a restore while it builds the tree: no process is left, and the images restore after', async () => {
  const w = new Workload('nb-abort-restore', compileWorkload('bigheap'), ['1']).start();
  const images = tmpDir('nb-abort-restore-img');
  await dump({ pid: w.pid, imagesDir: images });
  const ac = new AbortController();
  let rootSeen = 0;
  const err = await restore({
    imagesDir: images, signal: ac.signal,
    notify: (e, pid) => {
      if (e !== 'setup-namespaces') return;
      // The root task exists: the next safe point (restoring tasks) stops the run.
      rootSeen = pid ?? 0;
      ac.abort();
    },
  }).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof StasisError && err.code === 'E_ABORTED', String(err));
  assert.equal(rootSeen, w.pid);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the cancelled restore left its root');
  const r = await restore({ imagesDir: images });
  w.go();
  assert.deepEqual(await r.wait(), { kind: 'exited', code: 0 });
  assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
});
