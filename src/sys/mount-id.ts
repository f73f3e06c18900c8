// The id of the mount a path leads to (statx STATX_MNT_ID, Linux 5.8): the mnt_id fdinfo shows
// for an fd, for what has no fd (a task's cwd and root, through /proc/PID/cwd and root).
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

const AT_FDCWD = -100, STATX_MNT_ID = 0x1000, STX_MNT_ID_OFFSET = 0x90;

/** The mount id of `path` (followed), or undefined on a kernel that does not say. */
export function mountIdOf(path: string): number | undefined {
  const p = Buffer.from(`${path}\0`), buf = Buffer.alloc(256);
  const r = syscallRaw('statx', AT_FDCWD, addressOf(p), 0, STATX_MNT_ID, addressOf(buf));
  keepAlive(p, buf);
  if (r < 0n) throw new SyscallError('statx', Number(-r), path);
  return buf.readUInt32LE(0) & STATX_MNT_ID ? Number(buf.readBigUInt64LE(STX_MNT_ID_OFFSET)) : undefined;
}
