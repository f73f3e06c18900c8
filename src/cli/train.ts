// The training run of `npm run build` (tools/build-snapshot.cjs): a dump and a restore of a
// sleeping program, through the command line's own code, in a process that then hands V8's
// code cache of the bundle to the start-up snapshot. The snapshot so holds the bytecode of
// every function they ran (the dump, the restore, then a restore --lazy-pages, a pre-dump and
// an incremental dump): a command compiles none of them again (each function's first call
// otherwise parses and compiles it, about 20 ms of a small dump and 15 of its restore here),
// and the functions nothing ran stay uncompiled, out of the snapshot.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTask, resolveExecutable, kill, pidExists } from '../sys/index.js';
import { parseStat } from '../proc/index.js';
import { waitTask } from '../api/tasks.js';
import { sleepSync } from '../sys/sleep.js';


/** Whether `pid` runs `exe` and sleeps (its exec done, in its nanosleep). */
function asleepIn(pid: number, exe: string): boolean {
  try {
    if (fs.readlinkSync(`/proc/${pid}/exe`) !== fs.realpathSync(exe)) return false;
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).state === 'S';
  } catch {
    return false;
  }
}

/** Kills and reaps a child of this process, if it is still there. */
function end(pid: number): void {
  if (!pid || !pidExists(pid)) return;
  try {
    kill(pid, 9);
  } catch {
    /* gone */
  }
  try {
    waitTask(pid);
  } catch {
    /* not a child of this process (reaped already) */
  }
}

/**
 * Dumps a `sleep` started here into a directory of its own, restores it (-d), kills what it
 * restored, restores it again with --lazy-pages, pre-dumps that and dumps it incrementally:
 * what the command line runs for `dump -t PID -D DIR`, `restore -D DIR -d [--lazy-pages]`,
 * `pre-dump` and `dump --prev-images-dir`. Throws when the first dump or restore fails (the
 * others may be out of this kernel's reach); leaves no process and no directory behind.
 */
export async function train(main: (argv: string[]) => Promise<number>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-train-'));
  const images = path.join(dir, 'images');
  let pid = 0;
  try {
    const exe = resolveExecutable('sleep');
    const quiet = { path: '/dev/null' };
    pid = spawnTask([exe, '60'], { setsid: true, stdin: quiet, stdout: quiet, stderr: quiet });
    for (let i = 0; i < 400 && !asleepIn(pid, exe); i++) sleepSync(5);
    if (!asleepIn(pid, exe)) throw new Error(`the sample ${exe} (pid ${pid}) did not start`);
    if (await main(['dump', '-t', String(pid), '-D', images, '-o', 'dump.log', '-v4']) !== 0) throw new Error(`its dump failed (see ${images}/dump.log)`);
    end(pid); // (killed by the dump: reaped, so that its pid is free for the restore)
    if (await main(['restore', '-D', images, '-d', '-o', 'restore.log', '-v4']) !== 0) throw new Error(`its restore failed (see ${images}/restore.log)`);
    if (!asleepIn(pid, exe)) throw new Error(`the restored pid ${pid} is not the sleeping sample`);
    end(pid);
    // Then restore --lazy-pages, where the kernel has what it needs (userfaultfd): a machine
    // without it trains the plain restore alone.
    if (await main(['restore', '-D', images, '-d', '--lazy-pages', '-o', 'lazy.log', '-v4']) !== 0 || !asleepIn(pid, exe)) return;
    // And a migration's steps on what it restored, where the kernel tracks writes: a pre-dump,
    // then a dump of what changed since (written into a directory beside the first).
    const pre = path.join(dir, 'pre'), last = path.join(dir, 'last');
    if (await main(['pre-dump', '-t', String(pid), '-D', pre, '-o', 'pre.log', '-v4']) !== 0) return;
    await main(['dump', '-t', String(pid), '-D', last, '--prev-images-dir', '../pre', '--track-mem', '-o', 'dump.log', '-v4']);
  } finally {
    end(pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
