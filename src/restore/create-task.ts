// Creating a task with a chosen PID. A throwaway stub (any small program, started with
// posix_spawn) is seized and made to call clone3 with set_tid; CLONE_PARENT makes the new
// task a child of stasis, so stasis can wait for it. The new task is a copy of the stub,
// stopped by ptrace, ready to be turned into the restored task.
import fs from 'node:fs';
import {
  Injector, seize, interrupt, waitPid, kill, spawnTask, resolveExecutable, PTRACE_O, PTRACE_EVENT,
} from '../sys/index.js';
import { StasisError } from '../errors.js';

const CLONE_PARENT = 0x8000, CLONE_THREAD = 0x10000, SIGCHLD = 17;
const CLONE_ARGS_SIZE = 88;
// TRACEFORK too: a clone3 whose exit signal is SIGCHLD counts as a fork for ptrace.
export const TRACE_OPTIONS = PTRACE_O.EXITKILL | PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.TRACESYSGOOD;

export interface NewTask {
  pid: number;
  /** Address of the `syscall; int3` bytes the task inherited from its stub. */
  code: bigint;
}

function stubArgv(): string[] {
  return [resolveExecutable('sleep'), '3600'];
}

/**
 * Waits (up to 3 s) while `pid` belongs to a dead task that its parent has not reaped yet:
 * right after a dump killed a tree, init may still be collecting its zombies.
 */
export function pidIsFree(pid: number): boolean {
  const until = Date.now() + 3000;
  for (;;) {
    let state: string;
    try {
      state = /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
    } catch {
      return true;
    }
    if (state !== 'Z' && state !== 'X') return false;
    if (Date.now() > until) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

/** Injects clone3(set_tid = [pid]) into a stopped task that stasis traces; returns the child. */
export function cloneWithPid(inj: Injector, pid: number, flags: number): NewTask {
  const tid = Buffer.alloc(4);
  tid.writeInt32LE(pid, 0);
  const tidAddr = inj.put(tid);
  const args = Buffer.alloc(CLONE_ARGS_SIZE);
  args.writeBigUInt64LE(BigInt(flags), 0);
  // A process tells its parent of its death with SIGCHLD (else wait() without __WALL
  // would not see it); a thread tells nobody; with CLONE_PARENT the caller's is inherited.
  if (!(flags & (CLONE_THREAD | CLONE_PARENT))) args.writeBigUInt64LE(BigInt(SIGCHLD), 32);
  args.writeBigUInt64LE(tidAddr, 64); // set_tid
  args.writeBigUInt64LE(1n, 72); // set_tid_size
  // EEXIST also while a dead group or session still holds the number (its members not yet
  // reaped after a dump killed the tree): retry for a while unless a live task has it.
  const until = Date.now() + 3000;
  let r = inj.call('clone3', inj.put(args), CLONE_ARGS_SIZE);
  while (r === -17n && Date.now() < until && pidIsFree(pid)) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    r = inj.call('clone3', inj.put(args), CLONE_ARGS_SIZE);
  }
  if (r === -17n) throw new StasisError('E_PID_TAKEN', `Cannot restore pid ${pid}: another process has it`);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot create pid ${pid}: clone3 failed with errno ${-r}`);
  const child = Number(r);
  const w = waitPid(child);
  if (!w || w.kind !== 'stopped' || w.event !== PTRACE_EVENT.STOP) {
    throw new StasisError('E_RESTORE_FAILED', `New task ${child} did not start stopped`);
  }
  return { pid: child, code: inj.code };
}

/** Creates a child of stasis with the given pid, stopped and traced. */
export function createRootTask(pid: number): NewTask {
  if (!pidIsFree(pid)) {
    throw new StasisError('E_PID_TAKEN', `Cannot restore pid ${pid}: another process has it`);
  }
  const devnull = { path: '/dev/null', flags: 2 };
  const stub = spawnTask(stubArgv(), { stdin: devnull, stdout: devnull, stderr: devnull });
  try {
    seize(stub, TRACE_OPTIONS);
    interrupt(stub);
    waitPid(stub);
    const inj = new Injector(stub);
    return cloneWithPid(inj, pid, CLONE_PARENT);
  } finally {
    kill(stub, 9);
    waitPid(stub);
  }
}
