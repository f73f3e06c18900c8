// Processes sharing one fd table (clone with CLONE_FILES, not threads). The table is dumped
// once, with the first of them in tree order (its fdinfo-N.img; the others' files_id names
// the same N), and restore clones each sharer from its parent with CLONE_FILES, as CRIU
// does. That needs every sharer's parent to share the table too: a table shared by
// siblings alone (their parent exec'd or unshared since) is refused.
import { kcmpTasks } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { TreeTask } from './freeze-tree.js';

const KCMP_FILES = 2;

/** For each live task that shares the table of an earlier one: that earlier task's pid. */
export function sharedFdTables(tree: TreeTask[]): Map<number, number> {
  const live = tree.filter((t) => t.frozen);
  const rank = new Map(live.map((t, i) => [t.pid, i]));
  // Sorted by kcmp's ordering of the tables, then tree order: sharers end up side by side.
  const order = (a: TreeTask, b: TreeTask) => {
    const c = kcmpTasks(a.pid, b.pid, KCMP_FILES);
    return c === 0 ? rank.get(a.pid)! - rank.get(b.pid)! : c === 1 ? -1 : 1;
  };
  const sorted = [...live].sort(order);
  const owner = new Map<number, number>();
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!, b = sorted[i]!;
    if (kcmpTasks(a.pid, b.pid, KCMP_FILES) === 0) owner.set(b.pid, owner.get(a.pid) ?? a.pid);
  }
  for (const [pid, first] of owner) {
    const t = live.find((x) => x.pid === pid)!;
    if (t.ppid !== first && owner.get(t.ppid) !== first) {
      throw new StasisError('E_UNSUPPORTED',
        `Cannot dump pid ${pid}: it shares its fd table with pid ${first} but not with its parent ${t.ppid}; stasis can only restore a table shared down from a parent (clone with CLONE_FILES)`);
    }
  }
  return owner;
}
