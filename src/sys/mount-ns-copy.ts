// A private copy of another task's mount namespace, entered by this thread for a moment, to
// reach a mount that other mounts hide and clone it alone. open_tree(2) with OPEN_TREE_CLONE
// and without AT_RECURSIVE gives a detached mount of one filesystem at one root with nothing
// mounted on it: the files other mounts hide in the tree are there, what those mounts hold is
// not (CRIU reads a tmpfs so). The kernel clones only mounts of the caller's own namespace
// (may_copy_tree(): EINVAL otherwise), and a path leads to the topmost mount at its end, so
// the thread enters the task's namespace, takes its root, unshares a copy of it (copy_mnt_ns()
// moves root and cwd into the copy), makes the copy private and detaches there what covers the
// mount; the task's own mounts are never touched. setns(2) and unshare(2) of a mount namespace
// need a thread with a cwd and root of its own (mntns_install(): fs->users == 1): the thread
// takes them (thread-cwd.ts), and puts back where it was in stasis's namespace after.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { ownFsOfThread } from './thread-cwd.js';
import { CLONE_NEWNS } from './namespace.js';

const O_RDONLY = 0, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000, O_PATH = 0o10000000;
const AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000;
const OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = O_CLOEXEC;
const MS_REC = 0x4000, MS_PRIVATE = 0x40000, MNT_DETACH = 2;
const STATX_MNT_ID = 0x1000, STX_MNT_ID_OFFSET = 0x90;

/** What a thread in the copy can do; paths are the task's (its root is the thread's). */
export interface MountNsCopy {
  /** The copy's mountinfo as the thread sees it (the copy's mount ids). */
  mountinfo(): string;
  /** The id (in the copy) of the mount a path leads to. */
  mountIdAt(path: string): number;
  /** Detaches the topmost mount at `path` in the copy, and what is mounted on it. */
  detach(path: string): void;
  /** A detached clone of the topmost mount at `path` alone (an O_PATH fd of this process, close-on-exec). */
  cloneAt(path: string): number;
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

/** The text of a file this module opened (Node's fs warns of fds it did not open). */
function readAll(fd: number): string {
  const parts: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(65536);
    const n = Number(syscall('read', fd, addressOf(buf), buf.length));
    keepAlive(buf);
    if (n === 0) return Buffer.concat(parts).toString('utf8');
    parts.push(buf.subarray(0, n));
  }
}

function openPath(dirfd: number, path: string, flags: number): number {
  const p = cstr(path);
  const r = syscallRaw('openat', dirfd, addressOf(p), flags | O_CLOEXEC, 0);
  keepAlive(p);
  if (r < 0n) throw new SyscallError('openat', Number(-r), path);
  return Number(r);
}

function pathCall(name: 'umount2' | 'chroot', path: string, ...args: number[]): void {
  const p = cstr(path);
  const r = syscallRaw(name, addressOf(p), ...args);
  keepAlive(p);
  if (r < 0n) throw new SyscallError(name, Number(-r), path);
}

/** Runs `fn` on this thread in a private copy of task `pid`'s mount namespace, rooted at the task's root, then comes back. */
export function inMountNsCopy<T>(pid: number, fn: (copy: MountNsCopy) => T): T {
  ownFsOfThread();
  const held: number[] = [];
  const hold = (fd: number) => (held.push(fd), fd);
  try {
    // Opened here, before anything moves: the way back, and this thread's own /proc entry
    // (the task's root may have no /proc, or one of a pid namespace this thread is not in).
    const mine = hold(openPath(AT_FDCWD, '/proc/thread-self/ns/mnt', O_RDONLY));
    const myRoot = hold(openPath(AT_FDCWD, '/', O_PATH | O_DIRECTORY));
    const myCwd = hold(openPath(AT_FDCWD, '.', O_PATH | O_DIRECTORY));
    const self = hold(openPath(AT_FDCWD, '/proc/thread-self', O_PATH | O_DIRECTORY));
    const target = hold(openPath(AT_FDCWD, `/proc/${pid}/ns/mnt`, O_RDONLY));
    const taskRoot = hold(openPath(AT_FDCWD, `/proc/${pid}/root`, O_PATH | O_DIRECTORY));
    syscall('setns', target, CLONE_NEWNS);
    try {
      syscall('fchdir', taskRoot);
      pathCall('chroot', '.');
      syscall('unshare', CLONE_NEWNS);
      // A detach in the copy must not reach the task's mounts through a peer group.
      const none = cstr('none'), root = cstr('/');
      const r = syscallRaw('mount', addressOf(none), addressOf(root), 0, MS_REC | MS_PRIVATE, 0);
      keepAlive(none, root);
      if (r < 0n) throw new SyscallError('mount', Number(-r), 'making the copy private');
      return fn({
        mountinfo: () => {
          const fd = openPath(self, 'mountinfo', O_RDONLY);
          try {
            return readAll(fd);
          } finally {
            syscallRaw('close', fd);
          }
        },
        mountIdAt: (path) => {
          const p = cstr(path), buf = Buffer.alloc(256);
          const r = syscallRaw('statx', AT_FDCWD, addressOf(p), 0, STATX_MNT_ID, addressOf(buf));
          keepAlive(p, buf);
          if (r < 0n) throw new SyscallError('statx', Number(-r), path);
          if (!(buf.readUInt32LE(0) & STATX_MNT_ID)) throw new SyscallError('statx', 95, `${path}: no mount id`);
          return Number(buf.readBigUInt64LE(STX_MNT_ID_OFFSET));
        },
        detach: (path) => pathCall('umount2', path, MNT_DETACH),
        cloneAt: (path) => {
          const p = cstr(path);
          const r = syscallRaw('open_tree', AT_FDCWD, addressOf(p), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (path === '' ? AT_EMPTY_PATH : 0));
          keepAlive(p);
          if (r < 0n) throw new SyscallError('open_tree', Number(-r), path);
          return Number(r);
        },
      });
    } finally {
      // Failing to come back would leave this thread in the tree's namespace: nothing may go on.
      // (The copy goes away with its last user, this thread; a clone lives on in its fd.)
      const back = syscallRaw('setns', mine, CLONE_NEWNS);
      if (back < 0n) throw new SyscallError('setns', Number(-back), 'back into stasis\'s mount namespace');
      syscall('fchdir', myRoot);
      pathCall('chroot', '.');
      syscall('fchdir', myCwd);
    }
  } finally {
    for (const fd of held) syscallRaw('close', fd);
  }
}
