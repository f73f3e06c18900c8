// Starting tasks stasis will trace. Never through node:child_process: libuv reaps its own
// children and can swallow their ptrace stops. posix_spawn (vfork + exec) is safe in a
// threaded process, and libuv never waits for pids it did not create.
import fs from 'node:fs';
import path from 'node:path';
import { posixSpawnFns } from './libc.js';
import { SyscallError } from './syscall-error.js';

export type Stdio = 'inherit' | { path: string; flags?: number; mode?: number } | { fd: number };

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  stdin?: Stdio;
  stdout?: Stdio;
  stderr?: Stdio;
  /** Start the task in a new session (and so a new process group). */
  setsid?: boolean;
  /** Fds of this process handed to the task as its fds 3, 4, ... (everything else above 2 is closed). */
  passFds?: number[];
  /** The program to run, when argv[0] is only its name for the task. */
  exe?: string;
}

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_TRUNC = 0o1000;
const POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSID = 0x80;

export function resolveExecutable(file: string, env: Record<string, string | undefined> = process.env): string {
  if (file.includes('/')) return file;
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', file);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new SyscallError('posix_spawn', 2, file);
}

/** Starts argv[0] (looked up in PATH) and returns its pid; the caller must reap it. */
export function spawnTask(argv: string[], opts: SpawnOptions = {}): number {
  const env = opts.env ?? process.env;
  const exe = opts.exe ?? resolveExecutable(argv[0] ?? '', env);
  const actions = Buffer.alloc(256);
  const attr = Buffer.alloc(512);
  const ps = posixSpawnFns();
  ps.actionsInit(actions);
  ps.attrInit(attr);
  try {
    const std: [number, Stdio | undefined, number][] = [
      [0, opts.stdin, O_RDONLY],
      [1, opts.stdout, O_WRONLY | O_CREAT | O_TRUNC],
      [2, opts.stderr, O_WRONLY | O_CREAT | O_TRUNC],
    ];
    for (const [fd, s, flags] of std) {
      if (!s || s === 'inherit') continue;
      if ('fd' in s) ps.addDup2(actions, s.fd, fd);
      else ps.addOpen(actions, fd, s.path, s.flags ?? flags, s.mode ?? 0o644);
    }
    // Node keeps fds without close-on-exec (libuv's pipes): the task gets stdio only.
    const pass = opts.passFds ?? [];
    pass.forEach((fd, i) => ps.addDup2(actions, fd, 3 + i));
    ps.addClosefrom(actions, 3 + pass.length);
    if (opts.cwd) ps.addChdir(actions, opts.cwd);
    // Node ignores SIGPIPE, and ignored dispositions survive exec: give the task defaults.
    const all = Buffer.alloc(128, 0xff);
    ps.attrSetSigdefault(attr, all);
    ps.attrSetSigmask(attr, Buffer.alloc(128));
    ps.attrSetFlags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (opts.setsid ? POSIX_SPAWN_SETSID : 0));
    const envList = Object.entries(env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    const pid = new Int32Array(1);
    const rc = ps.spawn(pid, exe, actions, attr, [...argv, null], [...envList, null]);
    if (rc !== 0) throw new SyscallError('posix_spawn', rc, exe);
    return pid[0] ?? 0;
  } finally {
    ps.actionsDestroy(actions);
    ps.attrDestroy(attr);
  }
}
