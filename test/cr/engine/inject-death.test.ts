// The injector against its tracer's death, step by step: an injection into a thread of a
// self-checking task (survivor.c) is stopped at each point where the task may be let go,
// the task is let go there (PTRACE_DETACH leaves it as a dead tracer would), and it must
// carry on: registers, vector registers and memory as they were, its sleep restarted, its
// signal mask its own (a SIGUSR1 reaches its handler). The real thing, stasis killed by
// SIGKILL at random moments, is stress.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Workload, compileWorkload, assertPassed, waitFor, REPO } from '../harness.js';
import { Injector, seize, interrupt, waitPid, detach, cont, kill, getRegs, ProcMem, PTRACE_EVENT } from '../../../src/sys/index.js';

class LetGo extends Error {}

/** Seizes and stops one thread (a signal stop on the way is delivered, as freeze.ts does). */
function stopThread(tid: number): void {
  seize(tid, 0);
  interrupt(tid);
  for (;;) {
    const w = waitPid(tid);
    if (w?.kind !== 'stopped') throw new Error(`thread ${tid} ended while being stopped`);
    if (w.event === PTRACE_EVENT.STOP) return;
    cont(tid, w.event === 0 ? w.signal : 0);
  }
}

/** What a dump does through an injector: calls, strings, a scratch area that grows, and the end. */
function injection(inj: Injector): void {
  const pid = inj.must('getpid');
  assert.ok(pid > 0n);
  // A batch (callMany: its loop in a page of its own, the task parked at its end) gives what the calls one by one give.
  const usr1 = inj.put(Buffer.alloc(32));
  const one = inj.call('rt_sigaction', 10, 0, usr1, 8);
  const handler = inj.mem.readExact(usr1, 32);
  const batch = inj.callMany([...Array.from({ length: 8 }, () => ['getpid', []] as const), ['rt_sigaction', [10, 0, usr1 + 0n, 8]], ['chdir', [inj.putString('/nonexistent/batch')]]]);
  assert.deepEqual(batch, [...Array.from({ length: 8 }, () => pid), one, -2n]);
  assert.deepEqual(inj.mem.readExact(usr1, 32), handler);
  assert.equal(inj.call('chdir', inj.putString('/nonexistent/survivor')), -2n);
  inj.put(Buffer.alloc(100_000, 1)); // the scratch area grows: munmap and mmap in the task
  inj.must('getppid');
  inj.end();
}

function progress(w: Workload): number[] {
  return fs.readFileSync(w.file('progress'), 'utf8').trim().split(' ').map(Number);
}

/** It runs on, every thread of it, and a SIGUSR1 reaches its handler. */
function carriesOn(w: Workload, what: string): void {
  assert.ok(!fs.existsSync(w.file('fail')), `${what}: ${fs.existsSync(w.file('fail')) ? fs.readFileSync(w.file('fail'), 'utf8') : ''}`);
  const before = progress(w);
  kill(w.pid, 10);
  waitFor(`${what}: the task to go on and take its SIGUSR1`, () => {
    const now = progress(w);
    return now[0]! > before[0]! && now.slice(1).every((r, i) => r > before[i + 1]!);
  }, 5000);
  assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
}

test('a task let go at any step of an injection carries on exactly as it was', () => {
  const w = new Workload('survivor', compileWorkload('survivor', ['-lpthread']), ['1']).start();
  const tids = fs.readdirSync(`/proc/${w.pid}/task`).map(Number).sort((a, b) => a - b);
  assert.equal(tids.length, 2);

  // A whole injection, to learn its steps; the task's code is never written meanwhile.
  const steps: string[] = [];
  stopThread(w.pid);
  const rip = getRegs(w.pid).rip;
  const mem = new ProcMem(w.pid);
  const code = mem.readExact(rip - 16n, 32);
  // (While a batch runs the task is not stopped, so it cannot be let go by a detach: the SIGKILL test below dies there.)
  injection(new Injector(w.pid, { onStep: (s) => {
    if (s !== 'batch-running') steps.push(s);
    assert.deepEqual(mem.readExact(rip - 16n, 32), code, `the code at rip changed at step ${s}`);
  } }));
  mem.close();
  detach(w.pid);
  carriesOn(w, 'after a whole injection');
  for (const s of ['frame', 'parked', 'mask', 'getpid-regs', 'getpid-entry', 'getpid-exit', 'mmap-exit', 'munmap-exit', 'batch-regs', 'batch-stopped', 'mask-back']) {
    assert.ok(steps.includes(s), `no step ${s} in ${steps.join(' ')}`);
  }

  const seen = new Set<string>();
  for (let k = 0; k < steps.length; k++) {
    for (const tid of tids) {
      stopThread(tid);
      let n = 0;
      try {
        injection(new Injector(tid, { onStep: (s) => {
          seen.add(s);
          if (s !== 'batch-running' && n++ === k) throw new LetGo();
        } }));
      } catch (e) {
        if (!(e instanceof LetGo)) throw e;
      }
      detach(tid);
      carriesOn(w, `let go at step ${k} (${steps[k]}) in thread ${tid}`);
    }
  }
  // Caught asleep in its nanosleep at least once: let go after the stop that restarts it.
  assert.ok(seen.has('interrupted'), `never stopped for a restart: ${[...seen].join(' ')}`);
  w.go();
  assertPassed(w.finish());
});

test('a batch whose task ran on past its park (its tracer too slow) fails, and leaves the task as it was', () => {
  const w = new Workload('survivor', compileWorkload('survivor', ['-lpthread']), ['1']).start();
  for (let round = 0; round < 5; round++) {
    stopThread(w.pid);
    // A park of no time, and stasis late to look: the task is back in its own code (rt_sigreturn) before stasis stops it.
    const inj = new Injector(w.pid, { parkSeconds: 0, onStep: (s) => {
      if (s === 'batch-running') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    } });
    assert.throws(() => inj.callMany(Array.from({ length: 10 }, () => ['getpid', []] as const)), /ran on past its park/);
    inj.end(); // its registers are its own again: nothing is set
    detach(w.pid);
    carriesOn(w, `round ${round}: after a batch it ran on from`);
  }
  w.go();
  assertPassed(w.finish());
});

test('a tracer killed at a syscall stop of an injection (SIGKILL, no detach) leaves the task carrying on', () => {
  // A task at a syscall stop whose tracer dies is sent the stop's signal unless the tracer
  // asked for TRACESYSGOOD: SIGTRAP, and the task died of it once the injection gave its
  // signal mask back.
  const w = new Workload('survivor', compileWorkload('survivor', ['-lpthread']), ['1']).start();
  const script = path.join(REPO, 'dist/test/cr/engine/die-mid-injection.js');
  // batch-running: the task is in its batch or parked at its end (for FRAME_BATCH_PARK_S, 2 s) when its tracer dies.
  for (const at of ['getpid-entry', 'getpid-exit', 'mmap-exit', 'batch-running', 'batch-stopped', 'getppid-exit']) {
    const r = spawnSync(process.execPath, [script, String(w.pid), at], { encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', `the tracer did not die at ${at}: ${r.status} ${r.stderr}`);
    waitFor(`the task untraced after its tracer died at ${at}`, () => /TracerPid:\s+0\n/.test(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8')), 3000);
    carriesOn(w, `its tracer killed at ${at}`);
  }
  w.go();
  assertPassed(w.finish());
});
