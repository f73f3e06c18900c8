// CRIU's --freeze-cgroup (runc's freeze_cgroup): the cgroup is frozen first (v2's cgroup.freeze,
// v1's freezer.state), every thread in it and in the cgroups below it is seized and interrupted
// while nothing there can run, fork or exit, and the cgroup is thawed at once: each thread then
// stops in its interrupt trap before it runs a single instruction. A tree whose tasks fork or
// start threads all the time is stopped in one pass instead of a chase, and none is missed.
// The tree is then walked from its root as always (freeze-tree.ts), taking the seized threads
// without a second seize. The cgroup named must hold the tree's processes and no other: a
// process of it outside the tree (a `runc exec` whose parent is outside) would be left out of
// the images, so the dump is refused, and it is let go as it was.
import fs from 'node:fs';
import path from 'node:path';
import { StasisError } from '../errors.js';
import { seize, interrupt, detach, SyscallError, PTRACE_O } from '../sys/index.js';
import type { Log } from '../log.js';
import { freezeTree, thawTree, type TreeTask } from './freeze-tree.js';
import { awaitInterruptStop } from './freeze.js';

/** Refuses the dump unless cgroup directory `dir` holds exactly the processes `pids` (stasis's pids). */
export function checkFreezeCgroup(dir: string, pids: readonly number[]): void {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8');
  } catch (err) {
    throw new StasisError('E_UNSUPPORTED', `Cannot freeze through cgroup ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const tree = new Set(pids);
  const outside = text.split('\n').filter(Boolean).map(Number).filter((p) => !tree.has(p));
  if (outside.length) throw new StasisError('E_UNSUPPORTED', `Cannot dump through freeze cgroup ${dir}: it holds pid(s) ${outside.join(', ')}, which are not in the tree, and would be left out of the images`);
}

interface Freezer {
  dir: string;
  v2: boolean;
}

function openFreezer(dir: string): Freezer {
  if (fs.existsSync(path.join(dir, 'cgroup.freeze'))) return { dir, v2: true };
  if (fs.existsSync(path.join(dir, 'freezer.state'))) return { dir, v2: false };
  const why = fs.existsSync(dir) ? 'it has neither cgroup.freeze (cgroup v2, not its root) nor freezer.state (the v1 freezer hierarchy)' : 'no such cgroup directory';
  throw new StasisError('E_UNSUPPORTED', `Cannot freeze through cgroup ${dir}: ${why}`);
}

function read(f: string): string {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

/** 'thawed', 'freezing' or 'frozen', as CRIU reads it. */
function stateOf(fz: Freezer): string {
  if (fz.v2) {
    if (read(path.join(fz.dir, 'cgroup.freeze')).trim() === '0') return 'thawed';
    return /^frozen 1$/m.test(read(path.join(fz.dir, 'cgroup.events'))) ? 'frozen' : 'freezing';
  }
  return read(path.join(fz.dir, 'freezer.state')).trim().toLowerCase();
}

function write(fz: Freezer, frozen: boolean): void {
  const file = path.join(fz.dir, fz.v2 ? 'cgroup.freeze' : 'freezer.state');
  try {
    fs.writeFileSync(file, fz.v2 ? (frozen ? '1' : '0') : (frozen ? 'FROZEN' : 'THAWED'));
  } catch (err) {
    throw new StasisError('E_DUMP_FAILED', `Cannot ${frozen ? 'freeze' : 'thaw'} cgroup ${fz.dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Every thread of the cgroup and of the cgroups below it. */
function threadsIn(dir: string, v2: boolean): number[] {
  const tids = read(path.join(dir, v2 ? 'cgroup.threads' : 'tasks')).split('\n').filter(Boolean).map(Number);
  let subs: fs.Dirent[] = [];
  try {
    subs = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    /* removed meanwhile: its threads are gone with it */
  }
  for (const e of subs) if (e.isDirectory()) tids.push(...threadsIn(path.join(dir, e.name), v2));
  return tids;
}

/**
 * Freezes cgroup `dir`, seizes and interrupts every thread in it and below, and thaws it.
 * Returns the threads seized: each is traced by stasis, and stops in its interrupt trap as soon
 * as it runs. A cgroup already frozen is refused (a paused container: stasis would restore it
 * thawed). Nothing is left frozen or traced when it throws.
 */
export function seizeCgroup(dir: string, log: Log, timeoutMs = 10000): Set<number> {
  const fz = openFreezer(dir);
  const before = stateOf(fz);
  if (before !== 'thawed') throw new StasisError('E_UNSUPPORTED', `Cannot dump through freeze cgroup ${dir}: it is ${before} already (a paused container); stasis would restore it thawed`);
  const t0 = performance.now();
  const seized = new Set<number>();
  const pause = new Int32Array(new SharedArrayBuffer(4));
  write(fz, true);
  try {
    const until = Date.now() + timeoutMs;
    // Tasks still running or exiting while it freezes: its thread list is read once it is frozen.
    while (stateOf(fz) !== 'frozen') {
      if (Date.now() > until) throw new StasisError('E_DUMP_FAILED', `Cannot freeze cgroup ${dir}: still ${stateOf(fz)} after ${timeoutMs} ms (a task in an uninterruptible sleep?)`);
      Atomics.wait(pause, 0, 0, 1);
    }
    const tFrozen = performance.now();
    for (const tid of threadsIn(dir, fz.v2)) {
      if (seized.has(tid)) continue;
      try {
        seize(tid, PTRACE_O.TRACESYSGOOD);
      } catch (e) {
        // Gone, or exiting (a zombie thread refuses PTRACE_SEIZE): the tree's walk sees it so.
        if (e instanceof SyscallError && (e.code === 'ESRCH' || e.code === 'EPERM') && !tracedByOther(tid)) continue;
        if (e instanceof SyscallError && e.code === 'EPERM') throw new StasisError('E_UNSUPPORTED', `Cannot dump through freeze cgroup ${dir}: thread ${tid} in it is traced by pid ${tracerOf(tid)}; stasis cannot checkpoint a ptrace relation`, { cause: e });
        throw e;
      }
      seized.add(tid);
      interrupt(tid);
    }
    log.info(`froze cgroup ${dir} (${fz.v2 ? 'v2' : 'v1 freezer'}) in ${(tFrozen - t0).toFixed(1)} ms, seized its ${seized.size} thread(s) in ${(performance.now() - tFrozen).toFixed(1)} ms`);
  } catch (e) {
    try {
      write(fz, false);
    } finally {
      releaseSeized(seized);
    }
    throw e;
  }
  try {
    write(fz, false);
  } catch (e) {
    releaseSeized(seized);
    throw e;
  }
  return seized;
}

function tracerOf(tid: number): number {
  return Number(/TracerPid:\s+(\d+)/.exec(read(`/proc/${tid}/status`))?.[1] ?? 0);
}

function tracedByOther(tid: number): boolean {
  const t = tracerOf(tid);
  return t !== 0 && t !== process.pid;
}

/** Lets threads seized by seizeCgroup() go, each once it has taken its interrupt stop; one stasis no longer traces is passed over. */
export function releaseSeized(tids: Iterable<number>): void {
  for (const tid of tids) {
    try {
      if (awaitInterruptStop(tid, 2000)) detach(tid);
    } catch {
      /* gone, or let go already (ECHILD) */
    }
  }
}

/**
 * The tree of `root` frozen through cgroup `dir`: seizeCgroup(), then the walk from the root,
 * then the check that the cgroup holds the tree alone. A failure leaves every task as it was.
 */
export function freezeTreeInCgroup(root: number, dir: string, log: Log): TreeTask[] {
  const seized = seizeCgroup(dir, log);
  let tree: TreeTask[];
  try {
    tree = freezeTree(root, seized);
  } catch (e) {
    releaseSeized(seized);
    throw e;
  }
  const mine = new Set(tree.flatMap((t) => t.frozen?.tids ?? []));
  releaseSeized([...seized].filter((t) => !mine.has(t)));
  try {
    checkFreezeCgroup(dir, tree.map((t) => t.pid));
  } catch (e) {
    thawTree(tree, log);
    throw e;
  }
  return tree;
}
