// Starting and reaping tasks that stasis may trace (never through node:child_process,
// whose libuv reaper would take their ptrace stops).
import { spawnTask, waitPid, kill, type SpawnOptions } from '../sys/index.js';
import type { ExitStatus } from './types.js';

export interface StartOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  stdin?: string;
  stdout?: string;
  stderr?: string;
  setsid?: boolean;
}

/** Starts a program as a child of this process; returns its pid. */
export function startTask(argv: string[], o: StartOptions = {}): number {
  const s: SpawnOptions = {};
  if (o.cwd) s.cwd = o.cwd;
  if (o.env) s.env = o.env;
  if (o.stdin) s.stdin = { path: o.stdin };
  if (o.stdout) s.stdout = { path: o.stdout };
  if (o.stderr) s.stderr = { path: o.stderr };
  if (o.setsid) s.setsid = true;
  return spawnTask(argv, s);
}

/** Waits for a child of this process (started or restored by stasis) to end. */
export function waitTask(pid: number): ExitStatus {
  for (;;) {
    const w = waitPid(pid);
    if (w?.kind === 'exited') return { kind: 'exited', code: w.code };
    if (w?.kind === 'signaled') return { kind: 'signaled', signal: w.signal };
  }
}

export function killTask(pid: number, signal = 9): void {
  kill(pid, signal);
}
