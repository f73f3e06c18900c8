// Building the tree before any task is rebuilt. Every task starts as a copy of the stub:
// the root is cloned from a throwaway stub with CLONE_PARENT (a child of stasis); every
// other task is cloned by its parent's copy with clone3(set_tid), so pids and parentage
// come back exact. Sessions and groups are set while tasks are still stubs, in an order
// that makes them possible: a session leader calls setsid before it clones its children
// (they inherit the session), group leaders make their group before the members join it.
// A group or session whose leader has exited gets a helper task with the leader's pid,
// which makes the group (or session), lets the members in, then exits and is reaped by its
// parent (CRIU's "helper" tasks). An orphan the init of the tree's pid namespace adopted is
// cloned in its session by a helper of its leader, which exits and leaves it to the init.
// Zombies are cloned like the others, then made to exit with their status.
import fs from 'node:fs';
import { Injector, setRegs, getRegs, setSigmask, detach, failedWith } from '../sys/index.js';
import type { PstreeEntry } from '../image/gen/stasis/pstree_pb.js';
import { StasisError } from '../errors.js';
import { createRootTask, cloneWithPid, type NewTask, type UserNsHolder } from './create-task.js';
import { createSiblingRoot } from './sibling-root.js';
import type { FdCourier } from './fd-courier.js';
import type { ImageSet } from './read-images.js';
import { drainSignals } from './task-internals.js';
import { CowPremap } from './cow-premap.js';
import type { MappedFiles } from './mapped-files.js';
import { restoreCreds } from './creds.js';
import { planSessions } from './session-plan.js';
import type { IdView } from '../ns/index.js';
import type { CredsEntry } from '../image/gen/stasis/creds_pb.js';
import { sleepSync } from '../sys/sleep.js';

const SYS_EXIT_GROUP = 231n, SYS_KILL = 62n;
const CLONE_PARENT = 0x8000, CLONE_FILES = 0x400, CLONE_NEWNS = 0x20000, CLONE_NEWNET = 0x40000000;

function check(inj: Injector, what: string, r: bigint): void {
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot ${what} in pid ${inj.pid}: ${failedWith(r)}`);
}

/** The namespaces the root is made in: new ones (CLONE_NEW* flags), ones it joins. */
export interface RootNamespaces {
  flags: number;
  join: { file: string; flag: number }[];
  /** The offsets of a time namespace of its own (/proc/PID/timens_offsets), computed just before the root is made. */
  timeOffsets?: () => string | undefined;
  /** Called with the root once it exists, before its children do: its namespaces are filled. */
  onRoot?: (root: NewTask) => void;
  /** Under a user namespace of the tree's own: the namespaces are made by a holder (create-task.ts). */
  holder?: UserNsHolder;
  /** Under a user namespace the root is born in (with its pid namespace): how its tasks get stasis's files. */
  courier?: FdCourier;
  /** Under a user namespace of the tree's own: ids as its tasks see them, to stasis's (a zombie's credentials). */
  users?: IdView;
  /** The root is a child of stasis's parent (--restore-sibling, sibling-root.ts), not of stasis. */
  sibling?: boolean;
  /** With mount namespaces below the root's: the task whose namespace task `pid` enters (its pid as the tree sees it, and stasis's). */
  enterMnt?: (pid: number) => { vpid: number; hostPid: number } | undefined;
  /** With network namespaces other than the root's: the task whose namespace task `pid` enters (nested-nets.ts). */
  enterNet?: (pid: number) => { vpid: number; hostPid: number } | undefined;
}

/** Makes the root task in its namespaces and fills them (createTree does it unless it was done before). */
export function createRoot(set: ImageSet, created: Map<number, NewTask>, ns: RootNamespaces): NewTask {
  const root = set.order[0]!;
  const t = (ns.sibling ? createSiblingRoot : createRootTask)(root.pid, ns.flags, ns.join, ns.timeOffsets?.(), ns.holder, ns.courier);
  created.set(root.pid, t);
  ns.onRoot?.(t);
  return t;
}

interface Helper {
  pid: number;
  /** The task that cloned it and reaps it. */
  parent: number;
  /** It makes a group, or a session, whose leader has exited; or it hands orphans to the init. */
  kind: 'group' | 'session' | 'orphans';
}

/**
 * The sessions whose leader is not in the tree that children of `e` must be forked inside.
 * The root's own session is inherited from stasis and needs none.
 */
function missingSessions(e: PstreeEntry, order: PstreeEntry[], root: PstreeEntry, early: Set<number>): number[] {
  const inTree = new Set(order.map((x) => x.pid));
  const out = new Set<number>();
  for (const c of order) {
    if (c.ppid !== e.pid || c === root || early.has(c.pid)) continue;
    if (c.sid !== e.sid && c.sid !== c.pid && !inTree.has(c.sid) && c.sid !== root.sid) out.add(c.sid);
  }
  return [...out];
}

/**
 * Creates every task of the set; `created` is filled as it goes, for cleanup on failure.
 * `place` puts a task (by its image pid and host pid) in its cgroups, before it clones its
 * children, who are born there. Returns the areas each task premapped for its children (cow-premap.ts).
 */
export function createTree(
  set: ImageSet, created: Map<number, NewTask>, ns: RootNamespaces = { flags: 0, join: [] }, mapped?: MappedFiles,
  place: (pid: number, hostPid: number) => void = () => {},
): CowPremap {
  const planned = planSessions(set.order);
  if ('refused' in planned) throw new StasisError('E_UNSUPPORTED', `Cannot restore the tree's sessions: ${planned.refused}`);
  const { order, bySibling, early, byHelper } = planned.plan;
  const zombies = new Map(set.zombies.map((z) => [z.pstree.pid, z.status]));
  const zombieCreds = new Map(set.zombies.flatMap((z) => (z.creds ? [[z.pstree.pid, z.creds] as const] : [])));
  const root = order[0]!;
  // The root of a tree with a mount namespace of its own is made before its files are opened.
  if (!created.has(root.pid)) createRoot(set, created, ns);
  // What a task shares copy-on-write it inherits from the task that clones it.
  // (an orphan's helper is a copy of the leader that clones it).
  const cloner = new Map([...bySibling, ...byHelper].flatMap(([leader, cs]) => cs.map((c) => [c.pid, leader] as const)));
  const cowOrder = order.map((e) => (cloner.has(e.pid) ? { ...e, ppid: cloner.get(e.pid)! } : e));
  const cow = CowPremap.plan({ ...set, order: cowOrder }, created.get(root.pid)!.pid, mapped);
  const pgidOf = new Map<number, number>();
  const helpers: Helper[] = [];
  const sessionMember = new Set([...bySibling.values(), ...byHelper.values()].flat().map((c) => c.pid));
  // Orphans' helpers take pids above every number of the tree (tasks, threads, groups, sessions).
  let freePid = Math.max(...order.flatMap((x) => [x.pid, x.pgid, x.sid, ...x.threads])) + 1;
  /** A session leader, once it leads it, clones its siblings in its session, for their parent (CLONE_PARENT). */
  /** A child sharing the fd table of the task that clones it (CLONE_FILES) is cloned sharing it again. */
  const sameFiles = (c: PstreeEntry, by: PstreeEntry) => (filesIdOf(set, c.pid) !== undefined && filesIdOf(set, c.pid) === filesIdOf(set, by.pid) ? CLONE_FILES : 0);
  const cloneSessionMembers = (leader: PstreeEntry, inj: Injector, me: NewTask) => {
    for (const c of bySibling.get(leader.pid) ?? []) created.set(c.pid, cloneWithPid(inj, c.pid, CLONE_PARENT | sameFiles(c, leader), me));
    const orphans = byHelper.get(leader.pid);
    if (!orphans) return;
    // They are born its children in the session, and the init's once it has exited (endHelper).
    const pid = freePid++;
    const h = cloneWithPid(inj, pid, 0, me);
    created.set(pid, h);
    helpers.push({ pid, parent: leader.pid, kind: 'orphans' });
    const hi = new Injector(h.pid, { code: h.code, codeInPlace: true });
    try {
      for (const c of orphans) created.set(c.pid, cloneWithPid(hi, c.pid, 0, h));
    } finally {
      hi.end();
    }
  };

  const inTree = new Set(order.map((x) => x.pid));
  /**
   * A group whose leader has exited is made by a helper with its pid that its first member
   * clones (so that it is in the member's session), and that the members join (joinGroups).
   * The root's own group is inherited from stasis and needs none.
   */
  const makeGroup = (e: PstreeEntry, inj: Injector, me: NewTask) => {
    if (e === root || e.pgid === e.pid || e.pgid === root.pgid || inTree.has(e.pgid) || created.has(e.pgid)) return;
    const h = cloneWithPid(inj, e.pgid, 0, me);
    created.set(e.pgid, h);
    helpers.push({ pid: e.pgid, parent: e.pid, kind: 'group' });
    const hi = new Injector(h.pid, { code: h.code, codeInPlace: true });
    try {
      check(hi, 'make a group whose leader has exited', hi.call('setpgid', 0, 0));
    } finally {
      hi.end();
    }
  };

  for (const e of order) {
    const me = created.get(e.pid)!;
    const inj = new Injector(me.pid, { code: me.code, codeInPlace: true });
    if (zombies.has(e.pid)) {
      // A dead leader still holds its group and session: its members join them.
      try {
        if (e.sid === e.pid) check(inj, 'setsid', inj.call('setsid'));
        else if (e.pgid === e.pid) check(inj, 'setpgid', inj.call('setpgid', 0, 0));
        makeGroup(e, inj, me);
        cloneSessionMembers(e, inj, me);
        // It dies with its own credentials: its parent's waitid() reports its uid (si_uid).
        const creds = zombieCreds.get(e.pid);
        if (creds) zombieCredsOn(inj, me.pid, creds, ns);
      } finally {
        inj.end();
      }
      continue;
    }
    const sessions = new Map<number, Injector>();
    try {
      // Its mount and network namespaces, before it clones: its children are born in them.
      if (e !== root) enterNs(inj, me, ns.enterMnt?.(e.pid), 'mnt', CLONE_NEWNS);
      if (e !== root) enterNs(inj, me, ns.enterNet?.(e.pid), 'net', CLONE_NEWNET);
      place(e.pid, me.pid);
      // Before any clone: children (and helpers, whose clones are children too) inherit these.
      cow.premap(inj, e.pid, me.stasisPidfd, me.courier);
      const kids = order.filter((x) => x.ppid === e.pid && x !== root && !sessionMember.has(x.pid));
      // Those that stay in the session it was born in, before it leaves it.
      for (const c of kids.filter((x) => early.has(x.pid))) created.set(c.pid, cloneWithPid(inj, c.pid, sameFiles(c, e), me));
      if (e.sid === e.pid) check(inj, 'setsid', inj.call('setsid'));
      else if (e.pgid === e.pid) check(inj, 'setpgid', inj.call('setpgid', 0, 0));
      pgidOf.set(e.pid, Number(inj.call('getpgid', 0)));
      cloneSessionMembers(e, inj, me);
      for (const pid of missingSessions(e, order, root, early)) {
        const h = cloneWithPid(inj, pid, 0, me);
        created.set(pid, h);
        helpers.push({ pid, parent: e.pid, kind: 'session' });
        const hi = new Injector(h.pid, { code: h.code, codeInPlace: true }); // h.pid: stasis's view of it (in a pid namespace, `pid` is the tree's)
        sessions.set(pid, hi);
        check(hi, 'setsid for a session whose leader has exited', hi.call('setsid'));
      }
      makeGroup(e, inj, me);
      for (const c of kids.filter((x) => !early.has(x.pid))) {
        if (c.sid !== e.sid && c.sid !== c.pid && !sessions.has(c.sid)) {
          throw new StasisError('E_UNSUPPORTED', `Pid ${c.pid} is in session ${c.sid}, which its parent ${e.pid} cannot give it`);
        }
        // A member of a session whose leader is gone is forked inside it, by the helper,
        // and handed to its real parent with CLONE_PARENT.
        const via = sessions.get(c.sid);
        // A child sharing its parent's fd table (CLONE_FILES) is cloned sharing it again.
        const files = sameFiles(c, e);
        if (via && c.sid !== e.sid && files) {
          throw new StasisError('E_UNSUPPORTED', `Pid ${c.pid} shares the fd table of its parent ${e.pid} but is in a session whose leader has exited; stasis cannot restore both`);
        }
        created.set(c.pid, via && c.sid !== e.sid ? cloneWithPid(via, c.pid, CLONE_PARENT, me) : cloneWithPid(inj, c.pid, files, me));
      }
    } finally {
      for (const hi of sessions.values()) hi.end();
      inj.end();
    }
  }
  joinGroups(order, created, pgidOf);
  checkIds(order, created);
  for (const h of helpers) endHelper(h, created);
  for (const [pid, status] of zombies) makeZombie(created.get(pid)!, pid, status);
  return cow;
}

/** A stub enters the `kind` namespace `of` is in (setns through a pidfd: the tree's /proc may show neither), where it is not in it already. */
function enterNs(inj: Injector, me: NewTask, of: { vpid: number; hostPid: number } | undefined, kind: 'mnt' | 'net', flag: number): void {
  if (!of || fs.readlinkSync(`/proc/${me.pid}/ns/${kind}`) === fs.readlinkSync(`/proc/${of.hostPid}/ns/${kind}`)) return;
  const pidfd = inj.call('pidfd_open', of.vpid, 0);
  check(inj, `open a pidfd of pid ${of.vpid}, whose ${kind} namespace it enters`, pidfd);
  const r = inj.call('setns', pidfd, flag);
  inj.call('close', pidfd);
  check(inj, `enter the ${kind} namespace of pid ${of.vpid}: setns`, r);
}

/** The fd table a task has (its files_id); zombies have none. */
function filesIdOf(set: ImageSet, pid: number): number | undefined {
  return set.tasks.find((t) => t.pstree.pid === pid)?.ids.filesId;
}

/**
 * Members join groups led by another task (inherited groups need nothing); zombies too, still
 * stubs here: a zombie stays in its group (zdtm zombie01: one whose group's leader is gone).
 */
function joinGroups(order: PstreeEntry[], created: Map<number, NewTask>, pgidOf: Map<number, number>): void {
  for (const e of order) {
    if (e.pgid === e.pid || !created.has(e.pgid)) continue;
    if (pgidOf.get(e.pid) === e.pgid) continue;
    const me = created.get(e.pid)!;
    const inj = new Injector(me.pid, { code: me.code, codeInPlace: true });
    try {
      check(inj, `join process group ${e.pgid}`, inj.call('setpgid', 0, e.pgid));
    } finally {
      inj.end();
    }
  }
}

/**
 * Every task is in the group and session of its image (as its pid namespace numbers them)
 * before the helpers go: a plan that put one elsewhere fails the restore here rather than
 * leaving it there. The root's group and session, when it inherited them from outside the
 * tree, are stasis's now, and so are those of the tasks that share them.
 */
function checkIds(order: PstreeEntry[], created: Map<number, NewTask>): void {
  const root = order[0]!;
  for (const e of order) {
    let st: string;
    try {
      st = fs.readFileSync(`/proc/${created.get(e.pid)!.pid}/status`, 'utf8');
    } catch {
      continue; // gone: its restore fails later, naming it
    }
    const inner = (k: string) => {
      const v = new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(st)?.[1]?.split('\t').at(-1);
      return v === undefined ? undefined : Number(v);
    };
    for (const [what, want, got, inherited] of [
      ['group', e.pgid, inner('NSpgid'), root.pgid !== root.pid && e.pgid === root.pgid],
      ['session', e.sid, inner('NSsid'), root.sid !== root.pid && e.sid === root.sid],
    ] as const) {
      if (got === undefined || inherited || got === want) continue;
      throw new StasisError('E_RESTORE_FAILED', `Pid ${e.pid} came back in ${what} ${got}, not ${want}`);
    }
  }
}

/** A helper has done its work: it exits and its parent reaps it, as the real leader was. */
function endHelper(h: Helper, created: Map<number, NewTask>): void {
  const t = created.get(h.pid)!;
  const r = getRegs(t.pid);
  Object.assign(r, { rip: t.code, rax: SYS_EXIT_GROUP, rdi: 0n, orig_rax: BigInt.asUintN(64, -1n) });
  setRegs(t.pid, r);
  detach(t.pid);
  const parent = created.get(h.parent)!;
  const inj = new Injector(parent.pid, { code: parent.code, codeInPlace: true });
  try {
    const got = inj.call('wait4', h.pid, 0, 0, 0);
    if (got !== BigInt(h.pid)) throw new StasisError('E_RESTORE_FAILED', `Pid ${h.parent} could not reap the ${h.kind} helper ${h.pid}: ${got}`);
    drainSignals(inj);
  } finally {
    inj.end();
  }
  created.delete(h.pid);
}

/**
 * A zombie's credentials (as its user namespace sees them) set on its stub: in that namespace
 * where the stub was born there (with the tree's pid namespace), else in stasis's, by the ids
 * stasis sees.
 */
function zombieCredsOn(inj: Injector, pid: number, c: CredsEntry, ns: RootNamespaces): void {
  const v = ns.users;
  if (!v || ns.courier) return restoreCreds(inj, pid, c, v);
  const u = (k: 'uid' | 'euid' | 'suid' | 'fsuid') => v.uid(c[k]), g = (k: 'gid' | 'egid' | 'sgid' | 'fsgid') => v.gid(c[k]);
  restoreCreds(inj, pid, {
    ...c, uid: u('uid'), euid: u('euid'), suid: u('suid'), fsuid: u('fsuid'),
    gid: g('gid'), egid: g('egid'), sgid: g('sgid'), fsgid: g('fsgid'), groups: c.groups.map((x) => v.gid(x)),
  });
}

/** Lets a fresh task end as the zombie did: exit_group(code), or killed by its signal. */
function makeZombie(t: NewTask, vpid: number, status: number): void {
  const r = getRegs(t.pid);
  const sig = status & 0x7f;
  // It kills itself: by the pid it has in its own namespace.
  if (sig) Object.assign(r, { rip: t.code, rax: SYS_KILL, rdi: BigInt(vpid), rsi: BigInt(sig) });
  else Object.assign(r, { rip: t.code, rax: SYS_EXIT_GROUP, rdi: BigInt((status >> 8) & 0xff) });
  r.orig_rax = BigInt.asUintN(64, -1n);
  setRegs(t.pid, r);
  setSigmask(t.pid, 0n);
  detach(t.pid);
  waitZombie(t.pid);
}

/** Until the task is dead: its parent's SIGCHLD must be sent before the parent is rebuilt. */
function waitZombie(pid: number): void {
  const until = Date.now() + 5000;
  while (!/\) Z /.test(readStat(pid))) {
    if (Date.now() > until) throw new StasisError('E_RESTORE_FAILED', `Zombie ${pid} did not exit`);
    sleepSync(1);
  }
}

function readStat(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return ') Z ';
  }
}
