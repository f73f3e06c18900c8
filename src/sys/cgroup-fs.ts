// A cgroup hierarchy opened without mounting it anywhere: fsopen(2) + fsconfig(2) +
// fsmount(2) give a detached mount of it (CRIU's __new_open_cgroupfs), reached through
// /proc/self/fd/N, which nobody else sees and which goes away with its last fd. A v1
// hierarchy that exists already (its controllers, or its name=) is the one attached.
import { addressOf, keepAlive, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

const FSOPEN_CLOEXEC = 1, FSMOUNT_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0, FSCONFIG_SET_STRING = 1, FSCONFIG_CMD_CREATE = 6;

const cstr = (s: string) => Buffer.from(`${s}\0`);

/**
 * The root of the hierarchy named as /proc/PID/cgroup names it: '' (cgroup v2),
 * 'name=X' (a named v1 hierarchy) or 'cpu,cpuacct' (v1 controllers). Returns the mount's fd.
 */
export function openCgroupFs(name: string): number {
  const type = cstr(name === '' ? 'cgroup2' : 'cgroup');
  const fsfd = Number(syscall('fsopen', addressOf(type), FSOPEN_CLOEXEC));
  keepAlive(type);
  try {
    const config = (cmd: number, key?: string, value?: string) => {
      const k = key === undefined ? undefined : cstr(key), v = value === undefined ? undefined : cstr(value);
      const r = syscallRaw('fsconfig', fsfd, cmd, k ? addressOf(k) : 0, v ? addressOf(v) : 0, 0);
      keepAlive(...(k ? [k] : []), ...(v ? [v] : []));
      if (r < 0n) throw new SyscallError('fsconfig', Number(-r));
    };
    if (name.startsWith('name=')) config(FSCONFIG_SET_STRING, 'name', name.slice(5));
    else if (name !== '') for (const c of name.split(',')) config(FSCONFIG_SET_FLAG, c);
    config(FSCONFIG_CMD_CREATE);
    return Number(syscall('fsmount', fsfd, FSMOUNT_CLOEXEC, 0));
  } finally {
    syscallRaw('close', fsfd);
  }
}
