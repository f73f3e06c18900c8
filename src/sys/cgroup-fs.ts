// A cgroup hierarchy opened without mounting it anywhere (detached-fs.ts). A v1 hierarchy
// that exists already (its controllers, or its name=) is the one attached.
import { openDetachedFs, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING } from './detached-fs.js';

/**
 * The root of the hierarchy named as /proc/PID/cgroup names it: '' (cgroup v2),
 * 'name=X' (a named v1 hierarchy) or 'cpu,cpuacct' (v1 controllers). Returns the mount's fd.
 */
export function openCgroupFs(name: string): number {
  if (name === '') return openDetachedFs('cgroup2');
  if (name.startsWith('name=')) return openDetachedFs('cgroup', [[FSCONFIG_SET_STRING, 'name', name.slice(5)]]);
  return openDetachedFs('cgroup', name.split(',').map((c) => [FSCONFIG_SET_FLAG, c] as const));
}
