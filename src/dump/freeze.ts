// Freezing and thawing a process with PTRACE_SEIZE + PTRACE_INTERRUPT, thread by thread:
// no SIGSTOP is sent, so the process cannot tell it was stopped, and a failed dump leaves
// it exactly as it was. A thread can start another while we seize the first ones, so the
// thread list is read again until a pass finds no new thread (CRIU's freeze loop).
import fs from 'node:fs';
import { seize, interrupt, waitPid, detach, kill, cont, SyscallError, PTRACE_EVENT } from '../sys/index.js';
import { StasisError } from '../errors.js';

export interface Frozen {
  pid: number;
  /** Every thread, the leader first. */
  tids: number[];
}

function threadsOf(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
  } catch {
    return [];
  }
}

/** Seizes and stops one thread; false if it exited meanwhile. */
function freezeThread(pid: number, tid: number): boolean {
  try {
    seize(tid, 0);
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ESRCH') {
      if (tid === pid) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
      return false;
    }
    if (e instanceof SyscallError && e.code === 'EPERM') {
      throw new StasisError('E_DUMP_FAILED', `Cannot freeze pid ${pid} (thread ${tid}): ptrace is not allowed (already traced, a zombie, or not permitted)`, { cause: e });
    }
    throw e;
  }
  interrupt(tid);
  for (;;) {
    const w = waitPid(tid);
    if (!w) continue;
    if (w.kind !== 'stopped') {
      if (tid === pid) throw new StasisError('E_NO_PROCESS', `Pid ${pid} exited while being frozen`);
      return false;
    }
    if (w.event === PTRACE_EVENT.STOP) return true;
    // A signal-delivery stop came before our interrupt stop: deliver the signal as the
    // kernel would have (PTRACE_CONT with it) and wait on; the interrupt stays pending.
    cont(tid, w.event === 0 ? w.signal : 0);
  }
}

export function freeze(pid: number): Frozen {
  const f: Frozen = { pid, tids: [] };
  try {
    for (;;) {
      const fresh = threadsOf(pid).filter((t) => !f.tids.includes(t));
      if (fresh.length === 0) break;
      for (const tid of fresh) if (freezeThread(pid, tid)) f.tids.push(tid);
    }
    if (!f.tids.includes(pid)) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
    f.tids.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
    return f;
  } catch (e) {
    thaw(f);
    throw e;
  }
}

export function thaw(f: Frozen): void {
  for (const tid of f.tids) {
    try {
      detach(tid);
    } catch {
      /* already gone */
    }
  }
}

/** Kills a frozen process and waits until the kernel has reported every thread's death to us. */
export function killFrozen(f: Frozen): void {
  kill(f.pid, 9);
  for (const tid of [...f.tids].reverse()) {
    for (;;) {
      let w;
      try {
        w = waitPid(tid);
      } catch {
        break; // ECHILD: reaped already
      }
      if (w && w.kind !== 'stopped') break;
    }
  }
}
