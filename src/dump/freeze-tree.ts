// Freezing a whole tree: the root first, then the children of every frozen task, until no
// frozen task has a child left unfrozen (a frozen task cannot fork, so this ends). Zombies
// cannot be seized; they are recorded with their exit status.
import fs from 'node:fs';
import { parseStat, timesliceCounts, waitUntilRan } from '../proc/index.js';
import type { Log } from '../log.js';
import { freeze, thaw, killFrozen, type Frozen } from './freeze.js';
import { StasisError } from '../errors.js';
import { Injector, kcmpTasks, SyscallError, type InjectorOptions } from '../sys/index.js';

export interface TreeTask {
  pid: number;
  ppid: number;
  /** Set for live tasks. */
  frozen?: Frozen;
  /** Set for zombies: the wait status their parent will collect. */
  zombieStatus?: number;
}

function childrenOf(f: Frozen): number[] {
  return f.tids.flatMap((t) => {
    try {
      return fs.readFileSync(`/proc/${f.pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

const KCMP_VM = 1;

/**
 * A parent inside vfork() cannot be stopped until its child execs or exits (it waits in the
 * kernel, and PTRACE_INTERRUPT would wait for ever): told by a child that shares its mm.
 */
function refuseVforkParent(pid: number): void {
  let kids: number[] = [];
  try {
    kids = fs.readdirSync(`/proc/${pid}/task`).flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return; // gone: freeze() says so
  }
  for (const c of kids) {
    let same = false;
    try {
      same = kcmpTasks(pid, c, KCMP_VM) === 0;
    } catch {
      continue; // exited meanwhile
    }
    if (same) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}: it shares its address space with its child ${c} (a vfork() not yet ended by exec or exit, or CLONE_VM); stasis does not restore that`);
    }
  }
}

/**
 * The tree in breadth-first order (parents before their children). Threads in `seized` were
 * seized and interrupted already (seizeCgroup()); the others are seized here.
 */
export function freezeTree(root: number, seized?: ReadonlySet<number>): TreeTask[] {
  const tasks: TreeTask[] = [];
  try {
    refuseVforkParent(root);
    const rootFrozen = freeze(root, seized);
    // The root has no parent in the tree: pstree.img gives it ppid 0, as CRIU does (its restore looks every other ppid up in the tree).
    tasks.push({ pid: root, ppid: 0, frozen: rootFrozen });
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]!;
      if (!t.frozen) continue;
      for (const c of childrenOf(t.frozen)) {
        const st = parseStat(fs.readFileSync(`/proc/${c}/stat`, 'utf8'));
        if (st.state === 'Z') {
          tasks.push({ pid: c, ppid: t.pid, zombieStatus: st.exitCode });
          continue;
        }
        refuseVforkParent(c);
        try {
          tasks.push({ pid: c, ppid: t.pid, frozen: freeze(c, seized) });
        } catch (e) {
          // It exited while we seized it: its parent is frozen, so it stays a zombie. A task
          // still exiting refuses PTRACE_SEIZE with EPERM (PF_EXITING) and is a zombie a moment later.
          const exiting = e instanceof StasisError && (e.code === 'E_NO_PROCESS' || (e.cause instanceof SyscallError && e.cause.code === 'EPERM'));
          const now = exiting ? zombieSoon(c) : null;
          if (now === null) throw e;
          tasks.push({ pid: c, ppid: t.pid, zombieStatus: now });
        }
      }
    }
    return tasks;
  } catch (e) {
    thawTree(tasks);
    throw e;
  }
}

/** zombieStatus(), waiting up to 100 ms for a task that is exiting to become a zombie. */
function zombieSoon(pid: number): number | null {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 100; i++) {
    const s = zombieStatus(pid);
    if (s !== null) return s;
    if (!fs.existsSync(`/proc/${pid}`)) return null;
    Atomics.wait(pause, 0, 0, 1);
  }
  return null;
}

function zombieStatus(pid: number): number | null {
  try {
    const st = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return st.state === 'Z' ? st.exitCode : null;
  } catch {
    return null;
  }
}

/** Lets the tree go; returns once each of its threads has run since (restore/release-tasks.ts says why). */
export function thawTree(tasks: TreeTask[], log?: Log): void {
  const before = timesliceCounts(tasks.flatMap((t) => (t.frozen ? t.frozen.tids : [])));
  for (const t of tasks) if (t.frozen) thaw(t.frozen);
  waitUntilRan(before, log);
}

/**
 * Kills the tree, children first, each reported dead to us before the next; a parent, still
 * frozen, reaps its dead children (and its zombies) from inside before it is killed in turn,
 * so they are released at once: otherwise they end as zombies of init, which here reaps them
 * only seconds later, and their pids stay taken for a restore that follows. Nothing of a
 * task that lives on is changed (no SIGCHLD disposition): stasis dying half-way through
 * leaves the rest of the tree as it was.
 */
export function killTree(tasks: TreeTask[], inject: InjectorOptions = {}): void {
  // Breadth-first order reversed: every child comes before its parent.
  for (const t of [...tasks].reverse()) {
    if (!t.frozen) continue;
    const dead = tasks.filter((c) => c.ppid === t.pid).map((c) => c.pid);
    if (dead.length) {
      try {
        reapInside(t.pid, dead, inject);
      } catch {
        /* the kill goes on: the pids are only freed later */
      }
    }
    killFrozen(t.frozen);
  }
}

const WNOHANG = 1, WALL = 0x40000000;

function reapInside(pid: number, children: number[], inject: InjectorOptions): void {
  const inj = new Injector(pid, inject);
  try {
    for (const c of children) inj.call('wait4', c, 0, WNOHANG | WALL, 0);
  } finally {
    inj.end();
  }
}
