// /proc/PID/cgroup: one line per hierarchy, `ID:CONTROLLERS:PATH`. CONTROLLERS is empty for
// cgroup v2 (`0::/user.slice`), `name=X` for a named v1 hierarchy, or a comma-separated list
// of v1 controllers (`3:cpu,cpuacct:/`). PATH is relative to the reader's cgroup namespace.
import { ProcFormatError } from './proc-format-error.js';

export interface CgroupMember {
  /** The hierarchy as CRIU names it (CgMemberEntry.name): the CONTROLLERS field. */
  name: string;
  path: string;
}

/** The hierarchies of a task, sorted by name (CRIU's order of a set's members). */
export function parseCgroupFile(text: string): CgroupMember[] {
  const out: CgroupMember[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const a = line.indexOf(':'), b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) throw new ProcFormatError('cgroup', 'expected ID:CONTROLLERS:PATH', line);
    const path = line.slice(b + 1);
    if (!path.startsWith('/')) throw new ProcFormatError('cgroup', 'the path is not absolute', line);
    out.push({ name: line.slice(a + 1, b), path });
  }
  return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}
