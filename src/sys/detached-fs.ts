// A filesystem opened without mounting it anywhere: fsopen(2) + fsconfig(2) + fsmount(2) give
// a detached mount of it (CRIU's __new_open_cgroupfs), reached through /proc/self/fd/N, which
// nobody else sees and which goes away with its last fd. No mount namespace is changed.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

const FSOPEN_CLOEXEC = 1, FSMOUNT_CLOEXEC = 1;
export const FSCONFIG_SET_FLAG = 0, FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;

/** One fsconfig(2) setting: a flag (`[FSCONFIG_SET_FLAG, key]`) or a string (`[FSCONFIG_SET_STRING, key, value]`). */
export type FsSetting = readonly [cmd: number, key: string, value?: string];

const cstr = (s: string) => Buffer.from(`${s}\0`);

/**
 * A new instance (or the kernel's existing superblock, for the filesystems keyed on a
 * namespace: mqueue on this thread's IPC namespace) of `fstype`; returns the mount's fd.
 */
export function openDetachedFs(fstype: string, settings: readonly FsSetting[] = []): number {
  const type = cstr(fstype);
  const fsfd = Number(syscall('fsopen', addressOf(type), FSOPEN_CLOEXEC));
  keepAlive(type);
  try {
    const config = (cmd: number, key?: string, value?: string) => {
      const k = key === undefined ? undefined : cstr(key), v = value === undefined ? undefined : cstr(value);
      const r = syscallRaw('fsconfig', fsfd, cmd, k ? addressOf(k) : 0, v ? addressOf(v) : 0, 0);
      keepAlive(...(k ? [k] : []), ...(v ? [v] : []));
      if (r < 0n) throw new SyscallError('fsconfig', Number(-r));
    };
    for (const [cmd, key, value] of settings) config(cmd, key, value);
    config(FSCONFIG_CMD_CREATE);
    return Number(syscall('fsmount', fsfd, FSMOUNT_CLOEXEC, 0));
  } finally {
    syscallRaw('close', fsfd);
  }
}

const AT_FDCWD = -100, OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = 0o2000000, AT_SYMLINK_NOFOLLOW = 0x100;

/**
 * A detached clone of the mount at `path` of this process's mount namespace alone (no mounts
 * below it), showing the directory or file at `path`: open_tree(2) with OPEN_TREE_CLONE, as
 * `mount --bind` would make it, in the same peer group as the mount (or a slave of the same
 * master). Another namespace takes it with move_mount(2); returns its fd.
 */
export function cloneMount(path: string): number {
  const p = cstr(path);
  const r = syscallRaw('open_tree', AT_FDCWD, addressOf(p), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
  keepAlive(p);
  if (r < 0n) throw new SyscallError('open_tree', Number(-r), path);
  return Number(r);
}

const AT_EMPTY_PATH = 0x1000, MOUNT_ATTR_RDONLY = 0x1, MOUNT_ATTR_SIZE_VER0 = 32;

/**
 * Clears the read-only flag of the detached mount `fd` alone (mount_setattr(2), Linux 5.12):
 * a clone of a mount read-only per mount writes to its filesystem (unless the superblock is
 * read-only too); the mount it was cloned from stays read-only.
 */
export function makeMountWritable(fd: number): void {
  // struct mount_attr: attr_set, attr_clr, propagation, userns_fd (u64 each).
  const attr = Buffer.alloc(MOUNT_ATTR_SIZE_VER0), empty = cstr('');
  attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_RDONLY), 8);
  const r = syscallRaw('mount_setattr', fd, addressOf(empty), AT_EMPTY_PATH, addressOf(attr), MOUNT_ATTR_SIZE_VER0);
  keepAlive(attr, empty);
  if (r < 0n) throw new SyscallError('mount_setattr', Number(-r), 'clearing the read-only flag of a detached mount');
}
