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
