// Work from a directory (a bind() of a relative unix socket name must be made from it). On
// the main thread that is process.chdir(); a worker cannot call it, and a chdir there would
// move every thread of the host, so the thread first takes a cwd of its own
// (unshare(CLONE_FS): cwd, root and umask become the thread's) and moves only that.
import fs from 'node:fs';
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

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

/**
 * Runs `fn` on this thread with its root and cwd at directory `root` (a task's /proc/PID/root:
 * paths resolve in that task's mount namespace, and a Unix socket bound to an absolute name
 * there gets that name), and its cwd at `cwd` in it (a relative name is bound from there),
 * then comes back. The thread takes a root of its own first. (Not process.chdir(): Node
 * keeps the cwd it last set, which the way back would use.)
 */
export function inRoot<T>(root: string, fn: () => T, cwd = '/'): T {
  ownFsOfThread();
  const dirFlags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;
  const myRoot = fs.openSync('/', dirFlags), myCwd = fs.openSync('.', dirFlags);
  try {
    const to = fs.openSync(root, dirFlags);
    try {
      syscall('fchdir', to);
    } finally {
      fs.closeSync(to);
    }
    const dot = Buffer.from('.\0');
    try {
      const r = syscallRaw('chroot', addressOf(dot));
      if (r < 0n) throw new SyscallError('chroot', Number(-r), root);
      const dir = fs.openSync(cwd, dirFlags);
      try {
        syscall('fchdir', dir);
      } finally {
        fs.closeSync(dir);
      }
      return fn();
    } finally {
      // Failing to come back would leave this thread in the tree's root: nothing may go on.
      syscall('fchdir', myRoot);
      const back = syscallRaw('chroot', addressOf(dot));
      keepAlive(dot);
      if (back < 0n) throw new SyscallError('chroot', Number(-back), 'back to stasis\'s root');
      syscall('fchdir', myCwd);
    }
  } finally {
    fs.closeSync(myRoot);
    fs.closeSync(myCwd);
  }
}
