// Who makes each task of a tree, so that it is born in its session. A task cannot join a
// session after its birth (setsid only makes a new one), so it must be cloned by a task
// already in it; CLONE_PARENT then gives it the parent it had:
// - in its parent's session, or leading a session of its own (it calls setsid): its parent;
// - in the session its parent was born in, which the parent left (setsid) after it was
//   forked (zdtm session01), perhaps born there itself (its parent's parent did the same):
//   its parent, before the parent calls setsid;
// - in the session of a sibling that leads it (an orphan of that session reparented to their
//   common parent, zdtm session01): that sibling, once it has called setsid, with CLONE_PARENT;
// - in a session whose leader is not in the tree: a helper with the leader's pid, cloned by
//   the parent, makes the session and clones it with CLONE_PARENT (create-tree.ts);
// - a child of the root that is the init of the tree's own pid namespace (an orphan the
//   kernel gave it), in a session led by a task of the tree that is not its sibling (zdtm
//   zombie_leader, child_subreaper_and_reparent, session01): a helper with a pid of no task,
//   cloned by the leader, clones it and exits, and the kernel hands it to the init again
//   (CRIU's TASK_HELPER for a session). No task is a child subreaper yet when it exits.
// - anything else (a session led by a task elsewhere in the tree, or the root's session
//   inherited from outside while its parent left it) cannot be rebuilt: the dump is refused.
// The dump asks the same question (sessionRefusal) before it writes the tree.
import type { PstreeEntry } from '../image/gen/stasis/pstree_pb.js';

export interface SessionPlan {
  /** Tasks cloned by a sibling that leads their session (by image pid), for each such leader. */
  bySibling: Map<number, PstreeEntry[]>;
  /** Tasks their parent clones before it calls setsid (they stay in the session it was born in). */
  early: Set<number>;
  /** Orphans of the pid namespace's init, for the session leader whose helper clones them. */
  byHelper: Map<number, PstreeEntry[]>;
  /** The order tasks are visited in: each after the task that clones it. */
  order: PstreeEntry[];
}

type Entry = Pick<PstreeEntry, 'pid' | 'ppid' | 'pgid' | 'sid'>;

/** The plan, or why the tree's sessions cannot be made again. */
export function planSessions<T extends Entry>(order: T[]): { plan: { bySibling: Map<number, T[]>; early: Set<number>; byHelper: Map<number, T[]>; order: T[] } } | { refused: string } {
  const root = order[0];
  if (!root) return { plan: { bySibling: new Map(), early: new Set(), byHelper: new Map(), order } };
  const byPid = new Map(order.map((e) => [e.pid, e]));
  const bySibling = new Map<number, T[]>();
  const byHelper = new Map<number, T[]>();
  // Image pids are the tree's own when it has a pid namespace of its own, whose init is its root.
  const rootIsInit = root.pid === 1;
  const early = new Set<number>();
  // A session leader that was born in a session it left (setsid) after it forked tasks that
  // stay in it, perhaps through more leaders below it (zdtm session01: 10 forks 11, which
  // forks 12, each then calls setsid; 12 is in the session 10 was born in): as CRIU's
  // born_sid, every task between such a task and an ancestor still in its session.
  const bornIn = new Map<number, number>();
  for (const c of order) {
    const parent = byPid.get(c.ppid);
    if (c === root || !parent || c.sid === parent.sid || c.sid === c.pid) continue;
    const chain: T[] = [];
    let q: T | undefined = parent;
    while (q && q.sid !== c.sid && q.sid === q.pid && q !== root) {
      chain.push(q);
      q = byPid.get(q.ppid);
    }
    if (!q || q.sid !== c.sid) continue; // not born in it: the cases below
    for (const x of chain) {
      const was = bornIn.get(x.pid);
      if (was !== undefined && was !== c.sid) return { refused: `pid ${x.pid} would have to be born in both session ${was} and session ${c.sid}` };
      bornIn.set(x.pid, c.sid);
    }
  }
  const creator = new Map<number, number>();
  for (const c of order) {
    if (c === root) continue;
    const parent = byPid.get(c.ppid);
    if (!parent) return { refused: `pid ${c.pid}'s parent ${c.ppid} is not in the tree` };
    creator.set(c.pid, parent.pid);
    if (c.sid === parent.sid) continue;
    // Born in a session its parent was born in and left: cloned before the parent's setsid.
    const bornAt = c.sid === c.pid ? bornIn.get(c.pid) : c.sid;
    if (bornAt !== undefined && bornAt === bornIn.get(parent.pid)) {
      early.add(c.pid);
      continue;
    }
    // Born in its parent's session (at its clone), then it makes its own.
    if (c.sid === c.pid) continue;
    const leader = byPid.get(c.sid);
    if (!leader) {
      if (c.sid !== root.sid) continue; // a helper makes the session
      return { refused: `pid ${c.pid} is in the session ${c.sid} the tree's root inherited, which its parent ${parent.pid} left; stasis cannot put it back in it` };
    }
    if (leader.sid !== leader.pid) return { refused: `pid ${c.pid} is in session ${c.sid}, whose pid ${leader.pid} is not its leader` };
    if (leader.ppid !== parent.pid && parent === root && rootIsInit) {
      byHelper.set(leader.pid, [...(byHelper.get(leader.pid) ?? []), c]);
      creator.set(c.pid, leader.pid);
      continue;
    }
    if (leader.ppid !== parent.pid) {
      return { refused: `pid ${c.pid} is in session ${c.sid}, led by pid ${leader.pid}, which is not its sibling; stasis can only make it from a session leader with the same parent, or through a helper of the leader when it is an orphan of the init of a pid namespace of the tree's own` };
    }
    bySibling.set(leader.pid, [...(bySibling.get(leader.pid) ?? []), c]);
    creator.set(c.pid, leader.pid);
  }
  // Each task after its creator, the tree's order kept otherwise.
  const kids = new Map<number, T[]>();
  for (const e of order) {
    const by = creator.get(e.pid);
    if (by !== undefined) kids.set(by, [...(kids.get(by) ?? []), e]);
  }
  const out: T[] = [];
  const visit = (e: T) => {
    out.push(e);
    for (const k of kids.get(e.pid) ?? []) visit(k);
  };
  visit(root);
  if (out.length !== order.length) return { refused: 'the tree\'s parents do not lead back to its root' };
  return { plan: { bySibling, early, byHelper, order: out } };
}

/** Why a dump's tree (its pstree entries, the root first) could not be restored for its sessions, or undefined. */
export function sessionRefusal(order: Entry[]): string | undefined {
  const p = planSessions(order);
  return 'refused' in p ? p.refused : undefined;
}
