// CRIU 4.2's own binary (../shared/criu/criu, or $STASIS_CRIU) for the interop tests: whether
// it runs here, running it with its log, and reaping the tree it dumped.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { waitFor, REPO } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { waitPid, SyscallError } from '../../../src/sys/index.js';

export const CRIU = process.env.STASIS_CRIU ?? path.resolve(REPO, '../shared/criu/criu');

export function criuWorks(): string | false {
  if (!fs.existsSync(CRIU)) return `no CRIU binary at ${CRIU}`;
  try {
    execFileSync(CRIU, ['--version'], { stdio: 'pipe' });
    return false;
  } catch (err) {
    return `${CRIU} does not run: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** Runs CRIU (`fds`: fds of this process it gets as its fds 3, 4, ...); on failure the error carries the end of its log. */
export function criu(args: string[], dir: string, log: string, fds: number[] = []): void {
  try {
    execFileSync(CRIU, [...args, '-D', dir, '-v4', '-o', log], { stdio: ['pipe', 'pipe', 'pipe', ...fds] });
  } catch (err) {
    const text = fs.existsSync(path.join(dir, log)) ? fs.readFileSync(path.join(dir, log), 'utf8') : '';
    const errors = text.split('\n').filter((l) => /Error|error/.test(l) && !/RLIMIT_NOFILE/.test(l));
    throw new Error(`criu ${args[0]} failed: ${(err as Error).message.split('\n')[0]}\n${errors.slice(-15).join('\n')}`);
  }
}

/**
 * After `criu dump`, every task of the tree is dead: this process, parent of the root and
 * (as subreaper) of the orphans, reaps them, so that their pids are free for the restore.
 */
export function reapDumped(images: string): void {
  for (const e of readImage(images, 'pstree', undefined)) {
    waitFor(`pid ${e.pid} to go`, () => {
      try {
        return waitPid(e.pid, true) !== null || !fs.existsSync(`/proc/${e.pid}`);
      } catch (err) {
        if (err instanceof SyscallError && err.errno === 10) return !fs.existsSync(`/proc/${e.pid}`); // ECHILD: not ours
        throw err;
      }
    });
  }
}
