// Who makes each task of a tree, so that it is born in its session. A task cannot join a
// session after its birth (setsid only makes a new one), so it must be cloned by a task
// already in it; CLONE_PARENT then gives it the parent it had:
// - in its parent's session, or leading a session of its own (it calls setsid): its parent;
// - in the session its parent was born in, which the parent left (setsid) after it was
//   forked (zdtm session01): its parent, before the parent calls setsid;
// - in the session of a sibling that leads it (an orphan of that session reparented to their
//   common parent, zdtm session01): that sibling, once it has called setsid, with CLONE_PARENT;
// - in a session whose leader is not in the tree: a helper with the leader's pid, cloned by
//   the parent, makes the session and clones it with CLONE_PARENT (create-tree.ts);
// - anything else (a session led by a task elsewhere in the tree, or the root's session
//   inherited from outside while its parent left it) cannot be rebuilt: the dump is refused.
// The dump asks the same question (sessionRefusal) before it writes the tree.
import type { PstreeEntry } from '../image/gen/stasis/pstree_pb.js';

export interface SessionPlan {
  /** Tasks cloned by a sibling that leads their session (by image pid), for each such leader. */
  bySibling: Map<number, PstreeEntry[]>;
  /** Tasks their parent clones before it calls setsid (they stay in the session it was born in). */
  early: Set<number>;
  /** The order tasks are visited in: each after the task that clones it. */
  order: PstreeEntry[];
}

type Entry = Pick<PstreeEntry, 'pid' | 'ppid' | 'pgid' | 'sid'>;

/** The plan, or why the tree's sessions cannot be made again. */
export function planSessions<T extends Entry>(order: T[]): { plan: { bySibling: Map<number, T[]>; early: Set<number>; order: T[] } } | { refused: string } {
  const root = order[0];
  if (!root) return { plan: { bySibling: new Map(), early: new Set(), order } };
  const byPid = new Map(order.map((e) => [e.pid, e]));
  const bySibling = new Map<number, T[]>();
  const early = new Set<number>();
  /** The session each task is born in (its parent's at its clone; it may call setsid later). */
  const born = new Map<number, number>([[root.pid, root.sid]]);
  const creator = new Map<number, number>();
  for (const c of order) {
    if (c === root) continue;
    const parent = byPid.get(c.ppid);
    if (!parent) return { refused: `pid ${c.pid}'s parent ${c.ppid} is not in the tree` };
    creator.set(c.pid, parent.pid);
    if (c.sid === parent.sid) {
      born.set(c.pid, c.sid);
      continue;
    }
    if (c.sid === c.pid) {
      // Born in its parent's session, then it makes its own.
      born.set(c.pid, parent.sid);
      continue;
    }
    // Its parent leads a session it made after it forked c, in the session it was born in.
    if (parent.sid === parent.pid && parent !== root && c.sid === born.get(parent.pid)) {
      early.add(c.pid);
      born.set(c.pid, c.sid);
      continue;
    }
    born.set(c.pid, c.sid);
    const leader = byPid.get(c.sid);
    if (!leader) {
      if (c.sid !== root.sid) continue; // a helper makes the session
      return { refused: `pid ${c.pid} is in the session ${c.sid} the tree's root inherited, which its parent ${parent.pid} left; stasis cannot put it back in it` };
    }
    if (leader.ppid !== parent.pid || leader.sid !== leader.pid) {
      return { refused: `pid ${c.pid} is in session ${c.sid}, led by pid ${leader.pid}, which is not its sibling; stasis can only make it from a session leader with the same parent` };
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
  return { plan: { bySibling, early, order: out } };
}

/** Why a dump's tree (its pstree entries, the root first) could not be restored for its sessions, or undefined. */
export function sessionRefusal(order: Entry[]): string | undefined {
  const p = planSessions(order);
  return 'refused' in p ? p.refused : undefined;
}
