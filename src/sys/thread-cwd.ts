// Work from a directory (a bind() of a relative unix socket name must be made from it). On
// the main thread that is process.chdir(); a worker cannot call it, and a chdir there would
// move every thread of the host, so the thread first takes a cwd of its own
// (unshare(CLONE_FS): cwd, root and umask become the thread's) and moves only that.
import fs from 'node:fs';
import { syscall } from './libc.js';

const CLONE_FS = 0x200;
let ownFs = false;

/** Whether this thread is Node's main thread (the process's first: its tid is the pid), asked without loading worker_threads. */
export const onMainThread = () => Number(syscall('gettid')) === process.pid;

/**
 * Gives this thread a cwd, root and umask of its own, once: what it then changes (a chdir, a
 * mount namespace entered) moves no other thread of the host. On the main thread (the command
 * line's runs) libuv's pool keeps the old ones, the same directories: stasis moves the main
 * thread's only for a moment (inDirectory(), mount-ns-copy.ts), with no fs call of the pool under way.
 */
export function ownFsOfThread(): void {
  if (ownFs) return;
  syscall('unshare', CLONE_FS);
  ownFs = true;
}

export function inDirectory<T>(dir: string, fn: () => T): T {
  if (onMainThread()) {
    const back = process.cwd();
    process.chdir(dir);
    try {
      return fn();
    } finally {
      process.chdir(back);
    }
  }
  ownFsOfThread();
  const back = fs.openSync('.', fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const to = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    syscall('fchdir', to);
    try {
      return fn();
    } finally {
      syscall('fchdir', back);
    }
  } finally {
    fs.closeSync(to);
    fs.closeSync(back);
  }
}
