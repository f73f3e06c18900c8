// The cost of one injected syscall and of a whole injection (set up, a few calls, end), the
// tracer-death-safe way (stop at the syscall's exit, stasis's page, a frame to return by)
// against the int3 way (`syscall; int3` written at rip: one stop per call), on the same
// stopped task. Medians of STASIS_BENCH_INJECT rounds (default 2000 calls, 200 sessions).
import { spawnTask, seize, interrupt, waitPid, detach, kill, getRegs, Injector, GadgetCache, PTRACE_O } from '../src/sys/index.js';

const N = Number(process.env.STASIS_BENCH_INJECT ?? 2000);
const say = (s: string) => process.stdout.write(`${s}\n`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] ?? 0;
}

function measure(pid: number, safe: boolean): { callUs: number; p90Us: number; sessionUs: number } {
  const gadgets = new GadgetCache(); // as a run keeps one
  const open = () => (safe ? new Injector(pid, { gadgets }) : new Injector(pid, { code: getRegs(pid).rip }));
  const inj = open();
  const per: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    inj.call('getppid');
    per.push((performance.now() - t) * 1000);
  }
  inj.end();
  const sessions: number[] = [];
  for (let i = 0; i < N / 10; i++) {
    const t = performance.now();
    const s = open();
    s.call('getppid');
    s.call('getppid');
    s.end();
    sessions.push((performance.now() - t) * 1000);
  }
  per.sort((a, b) => a - b);
  return { callUs: median(per), p90Us: per[Math.floor(per.length * 0.9)] ?? 0, sessionUs: median(sessions) };
}

const pid = spawnTask(['sleep', '1000']);
try {
  seize(pid, PTRACE_O.EXITKILL);
  interrupt(pid);
  waitPid(pid);
  // Warm up both ways (JIT, page cache), then alternate to share the machine's noise.
  measure(pid, true);
  measure(pid, false);
  const r: Record<'safe' | 'int3', ReturnType<typeof measure>[]> = { safe: [], int3: [] };
  for (let i = 0; i < 3; i++) {
    r.safe.push(measure(pid, true));
    r.int3.push(measure(pid, false));
  }
  for (const k of ['int3', 'safe'] as const) {
    const m = (f: (x: ReturnType<typeof measure>) => number) => median(r[k].map(f)).toFixed(1);
    say(`injected syscall, ${k === 'safe' ? 'tracer-death-safe' : 'int3 at rip (before)'}: ${m((x) => x.callUs)} us per call (p90 ${m((x) => x.p90Us)} us), ` +
      `${m((x) => x.sessionUs)} us per injection of 2 calls (set up and end included)`);
  }
  detach(pid);
} finally {
  kill(pid, 9);
  waitPid(pid);
}
