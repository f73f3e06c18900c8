// Freezing and thawing tasks with PTRACE_SEIZE + PTRACE_INTERRUPT: no SIGSTOP is sent, so
// the task cannot tell it was stopped, and a failed dump leaves it exactly as it was.
import fs from 'node:fs';
import { seize, interrupt, waitPid, detach, kill, cont, SyscallError, PTRACE_EVENT } from '../sys/index.js';
import { StasisError } from '../errors.js';

export interface Frozen {
  pid: number;
}

export function freeze(pid: number): Frozen {
  try {
    seize(pid, 0);
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ESRCH') {
      throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
    }
    if (e instanceof SyscallError && e.code === 'EPERM') {
      throw new StasisError('E_DUMP_FAILED', `Cannot freeze pid ${pid}: ptrace is not allowed (already traced, or not permitted)`, { cause: e });
    }
    throw e;
  }
  interrupt(pid);
  for (;;) {
    const w = waitPid(pid);
    if (!w) continue;
    if (w.kind !== 'stopped') throw new StasisError('E_NO_PROCESS', `Pid ${pid} exited while being frozen`);
    if (w.event === PTRACE_EVENT.STOP) return { pid };
    // A signal-delivery stop came before our interrupt stop: deliver the signal as the
    // kernel would have (PTRACE_CONT with it) and wait on; the interrupt stays pending.
    cont(pid, w.event === 0 ? w.signal : 0);
  }
}

export function thaw(t: Frozen): void {
  try {
    detach(t.pid);
  } catch {
    /* already gone */
  }
}

/** Kills a frozen task and waits until the kernel has reported its death to us. */
export function killFrozen(t: Frozen): void {
  kill(t.pid, 9);
  for (;;) {
    const w = waitPid(t.pid);
    if (w && w.kind !== 'stopped') return;
    if (!fs.existsSync(`/proc/${t.pid}`)) return;
  }
}
