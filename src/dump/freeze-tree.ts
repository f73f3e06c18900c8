// Freezing a whole tree: the root first, then the children of every frozen task, until no
// frozen task has a child left unfrozen (a frozen task cannot fork, so this ends). Zombies
// cannot be seized; they are recorded with their exit status.
import fs from 'node:fs';
import { parseStat } from '../proc/index.js';
import { freeze, thaw, killFrozen, type Frozen } from './freeze.js';
import { StasisError } from '../errors.js';
import { Injector } from '../sys/index.js';

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

/** The tree in breadth-first order (parents before their children). */
export function freezeTree(root: number): TreeTask[] {
  const tasks: TreeTask[] = [];
  try {
    const rootFrozen = freeze(root);
    tasks.push({ pid: root, ppid: parseStat(fs.readFileSync(`/proc/${root}/stat`, 'utf8')).ppid, frozen: rootFrozen });
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]!;
      if (!t.frozen) continue;
      for (const c of childrenOf(t.frozen)) {
        const st = parseStat(fs.readFileSync(`/proc/${c}/stat`, 'utf8'));
        if (st.state === 'Z') {
          tasks.push({ pid: c, ppid: t.pid, zombieStatus: st.exitCode });
          continue;
        }
        try {
          tasks.push({ pid: c, ppid: t.pid, frozen: freeze(c) });
        } catch (e) {
          // It exited while we seized it: its parent is frozen, so it stays a zombie.
          const now = e instanceof StasisError && e.code === 'E_NO_PROCESS' ? zombieStatus(c) : null;
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

function zombieStatus(pid: number): number | null {
  try {
    const st = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return st.state === 'Z' ? st.exitCode : null;
  } catch {
    return null;
  }
}

export function thawTree(tasks: TreeTask[]): void {
  for (const t of tasks) if (t.frozen) thaw(t.frozen);
}

/**
 * Kills the tree, children first, each reported dead to us before the next. Every parent is
 * first made to ignore SIGCHLD and to reap its zombies, so the tasks we kill are released
 * at once: otherwise they end as zombies of init, which here reaps them only seconds later,
 * and their pids stay taken for a restore that follows.
 */
export function killTree(tasks: TreeTask[]): void {
  for (const t of tasks) {
    if (t.frozen && tasks.some((c) => c.ppid === t.pid)) {
      try {
        releaseChildrenOnExit(t.pid);
      } catch {
        /* the kill goes on: the pids are only freed later */
      }
    }
  }
  for (const t of [...tasks].reverse()) if (t.frozen) killFrozen(t.frozen);
}

const SIGCHLD = 17, SIG_IGN = 1n, WNOHANG = 1, WALL = 0x40000000;

function releaseChildrenOnExit(pid: number): void {
  const inj = new Injector(pid);
  try {
    const sa = Buffer.alloc(32);
    sa.writeBigUInt64LE(SIG_IGN, 0);
    inj.must('rt_sigaction', SIGCHLD, inj.put(sa), 0, 8);
    while (inj.call('wait4', -1, 0, WNOHANG | WALL, 0) > 0n) { /* a zombie reaped */ }
  } finally {
    inj.end();
  }
}
