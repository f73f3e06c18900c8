// stasis killed (SIGKILL) at random moments of `dump`, `dump --leave-running` and
// `pre-dump`: every victim carries on and checks itself (survivor.c: registers, vector
// registers, memory, its sleep restarted, its SIGUSR1 handler reached). A `dump` that got
// as far as killing its victim must have left whole images, and the victim restored from
// them carries on too. STASIS_STRESS_TRIALS sets the number of trials (split over the three
// verbs), STASIS_STRESS_SEED replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Workload, compileWorkload, assertPassed, tmpDir, waitFor, sleepMs, REPO } from '../harness.js';
import { restore } from '../../../src/api/index.js';
import { verifySums } from '../../../src/image/image-sums.js';
import { waitPid } from '../../../src/sys/index.js';

const TRIALS = Number(process.env.STASIS_STRESS_TRIALS ?? 102);
let seed = Number(process.env.STASIS_STRESS_SEED ?? 1);
const STASIS = path.join(REPO, 'dist/test/cr/engine/stasis-on-go.js');
const VERBS = [['dump'], ['dump', '--leave-running'], ['pre-dump']] as const;

/** xorshift32: the same moments for the same seed. */
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}

function progress(w: Workload): number[] {
  return fs.readFileSync(w.file('progress'), 'utf8').trim().split(' ').map(Number);
}

function carriesOn(w: Workload, what: string): void {
  const bad = () => fs.existsSync(w.file('fail')) ? fs.readFileSync(w.file('fail'), 'utf8') : '';
  assert.equal(bad(), '', what);
  waitFor(`${what}: the victim untraced`, () => /TracerPid:\s+0\n/.test(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8')), 3000);
  const before = progress(w);
  process.kill(w.pid, 'SIGUSR1');
  waitFor(`${what}: the victim to go on and take its SIGUSR1`, () => {
    const now = progress(w);
    return now[0]! > before[0]! && now.slice(1).every((r, i) => r > before[i + 1]!);
  }, 5000);
  assert.equal(bad(), '', what);
}

function dead(pid: number): boolean {
  try {
      return /^State:\s+[ZX]/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return true;
    }
  }

  function logTail(work: string): string {
  try {
    return fs.readFileSync(path.join(work, 'run.log'), 'utf8').split('\n').slice(-40).join('\n');
  } catch {
    return '(no log)';
  }
}

type Stasis = { child: ChildProcess; exited: Promise<[number | null, string | null]>; images: string };

  /** A stasis process, started and waiting for its go (node's start-up is paid meanwhile). */
  function startStasis(args: readonly string[], pid: number, work: string): Stasis {
    const images = tmpDir('stress-img');
    const child = spawn(process.execPath, [STASIS, ...args, '-t', String(pid), '-D', images, '-W', work, '-o', 'run.log', '-v4'], { stdio: ['pipe', 'ignore', 'ignore'] });
    return { child, exited: once(child, 'exit') as Promise<[number | null, string | null]>, images };
  }

  /** Lets stasis go and kills it `at` (0..1) of the way through a run of `span` ms (never with span 0). Resolves how it ended. */
  async function runAndKill(s: Stasis, at: number, span: number): Promise<{ finished: boolean; ms: number }> {
    const { child, exited } = s;
    child.stdin!.end('go\n');
    const t0 = performance.now();
    if (span > 0) {
      const until = t0 + at * span;
      while (performance.now() < until && child.exitCode === null) sleepMs(0.2);
      child.kill('SIGKILL');
    }
    const [code] = await exited;
    return { finished: code === 0, ms: performance.now() - t0 };
  }

  test(`stasis killed at ${TRIALS} random moments of dump, dump -R and pre-dump: every victim carries on`, { timeout: 600_000 }, async () => {
    const binary = compileWorkload('survivor', ['-lpthread']);
    const outcomes = { killed: 0, finished: 0, restored: 0 };
    // Whatever fails, nothing is left behind: a stasis waiting for its go, or a victim, would
    // keep this test's process (and npm test) alive for ever.
    const live = new Set<Stasis>();
    const victims: Workload[] = [];
    const start = (args: readonly string[], pid: number, work: string) => {
      const s = startStasis(args, pid, work);
      live.add(s);
      void s.exited.then(() => live.delete(s));
      return s;
    };
    try {
    for (const [v, args] of VERBS.entries()) {
      const w = new Workload(`stress-${v}`, binary, ['1']).start();
      victims.push(w);
      const work = tmpDir('stress-work');
      const kills = args.length === 1 && args[0] === 'dump';
      // How long a whole run takes here: the moments are spread over it.
      const calib = start(args, w.pid, work);
      const whole = await runAndKill(calib, 0, 0);
      assert.ok(whole.finished, `an uninterrupted ${args.join(' ')} failed: ${fs.readFileSync(path.join(work, 'run.log'), 'utf8')}`);
      if (kills) {
        waitPid(w.pid);
        await restore({ imagesDir: calib.images, detach: true });
      }
      carriesOn(w, `after an uninterrupted ${args.join(' ')}`);
      const span = whole.ms * 1.1;

      let next = start(args, w.pid, work);
      for (let i = v; i < TRIALS; i += VERBS.length) {
        const cur = next;
        const at = random();
        const r = await runAndKill(cur, at, span);
        next = start(args, w.pid, work); // starts up while this trial is checked
        let what = `trial ${i} (${args.join(' ')} killed ${(at * span).toFixed(1)} ms in${r.finished ? ', after it finished' : ''})`;
        outcomes[r.finished ? 'finished' : 'killed']++;
        if (dead(w.pid)) {
          const status = waitPid(w.pid);
          // Only a dump kills its victim, and only once its images are whole.
          assert.ok(kills, `${what}: the victim died (${JSON.stringify(status)}); the end of stasis's log:\n${logTail(work)}`);
          verifySums(cur.images);
          const res = await restore({ imagesDir: cur.images, detach: true });
          assert.equal(res.pid, w.pid);
          outcomes.restored++;
          what += ', restored from its images';
        }
        try {
          carriesOn(w, what);
        } catch (e) {
          (e as Error).message += `\nthe end of stasis's log:\n${logTail(work)}`;
          throw e;
        }
        fs.rmSync(cur.images, { recursive: true, force: true });
      }
      next.child.kill('SIGKILL');
      await next.exited;
      w.go();
      assertPassed(w.finish());
    }
  } finally {
    for (const s of live) s.child.kill('SIGKILL');
    await Promise.all([...live].map((s) => s.exited));
    for (const w of victims) {
      try {
        process.kill(w.pid, 'SIGKILL');
      } catch { /* gone already */ }
    }
  }
  process.stderr.write(`stress: ${TRIALS} trials: ${outcomes.killed} runs killed, ${outcomes.finished} finished first; ` +
    `${outcomes.restored} victims killed by a finished dump came back from its images; every victim carried on\n`);
});
