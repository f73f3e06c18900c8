// Freezing a whole tree: the root first, then the children of every frozen task, until no
// frozen task has a child left unfrozen (a frozen task cannot fork, so this ends). Zombies
// cannot be seized; they are recorded with their exit status.
import fs from 'node:fs';
import { parseStat } from '../proc/index.js';
import { freeze, thaw, killFrozen, type Frozen } from './freeze.js';
import { StasisError } from '../errors.js';

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

/** Kills the tree, children first, each reported dead to us before the next. */
export function killTree(tasks: TreeTask[]): void {
  for (const t of [...tasks].reverse()) if (t.frozen) killFrozen(t.frozen);
}
