// Cgroup namespaces, in the one case that needs no cgroup of its own: every task of the tree
// sits at the root of its cgroup namespace (each line of /proc/PID/cgroup, read from inside,
// says `/`), as after `unshare --cgroup`. Restore makes the namespace with the root's clone3,
// rooted at the cgroup the root is born in, so the tasks see `/` again. A task below the
// namespace's root is refused, and so is one not in stasis's cgroups (cgroup/dump-cgroups.ts):
// stasis does not restore the namespace's root elsewhere (CRIU's cgns_prefix).
import fs from 'node:fs';
import { inNamespace, CLONE_NEWCGROUP } from '../sys/index.js';
import type { NsKind } from './ns-kind.js';

export const cgroupNs = {
  name: 'cgroup',
  flag: CLONE_NEWCGROUP,
  check: (pid, tree) => inNamespace(`/proc/${pid}/ns/cgroup`, 'cgroup', CLONE_NEWCGROUP, () => {
    for (const p of tree) {
      let text: string;
      try {
        text = fs.readFileSync(`/proc/${p}/cgroup`, 'utf8');
      } catch {
        continue; // a zombie
      }
      const below = text.trim().split('\n').find((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1) !== '/');
      if (below) return `pid ${p} is in cgroup ${below.trim()} below the namespace's root; stasis restores a cgroup namespace only with every task at its root`;
    }
    return undefined;
  }),
  dump: () => {},
  restore: () => {},
} satisfies NsKind;
