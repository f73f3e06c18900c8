// Freezing and thawing a process with PTRACE_SEIZE + PTRACE_INTERRUPT, thread by thread:
// no SIGSTOP is sent, so the process cannot tell it was stopped, and a failed dump leaves
// it exactly as it was. A thread can start another while we seize the first ones, so the
// thread list is read again until a pass finds no new thread (CRIU's freeze loop).
// A process stopped by job control (or about to be: a SIGSTOP pending) is frozen as well,
// and said to be stopped, with the signal that stopped it.
import fs from 'node:fs';
import {
  seize, interrupt, waitPid, detach, kill, cont, getSigmask, setSigmask, setOptions, SyscallError, PTRACE_EVENT, PTRACE_O, type WaitResult,
} from '../sys/index.js';
import { parseStatus } from '../proc/index.js';
import { StasisError } from '../errors.js';
import { readRseqCs, writeBackRseqCs, type RseqCsAtFreeze } from './rseq-cs.js';
import { sleepSync } from '../sys/sleep.js';

export interface Frozen {
  pid: number;
  /** Every thread, the leader first. */
  tids: number[];
  /**
   * The process is stopped by job control: the signal that stopped it (SIGSTOP, SIGTSTP,
   * SIGTTIN, SIGTTOU), which a restore sends it again.
   */
  stopSigno?: number;
  /**
   * It was stopped only by a SIGSTOP pending (dequeued by the freeze, which the kernel
   * does not give back): thawing it sends it again.
   */
  stopPending?: boolean;
  /** Threads frozen with an rseq critical section named: rseq_cs as it was (rseq-cs.ts). */
  rseqCs: Map<number, RseqCsAtFreeze>;
}

const SIGSTOP = 19;
const STOP_SIGNALS = new Set([SIGSTOP, 20, 21, 22]); // SIGSTOP SIGTSTP SIGTTIN SIGTTOU
const ALL_SIGNALS = BigInt.asUintN(64, -1n);

/**
 * The next stop of a thread we resumed; if none comes (it ran on), it is interrupted. The
 * wait is long: on a loaded machine a resumed thread may wait seconds for a CPU, and an
 * interrupt sent meanwhile is one more trap to take.
 */
function nextStop(tid: number): WaitResult {
  const until = Date.now() + 10000;
  for (;;) {
    const w = waitPid(tid, true);
    if (w) return w;
    if (Date.now() > until) {
      interrupt(tid);
      return waitPid(tid)!;
    }
    sleepSync(1);
  }
}

function readProc(pid: number, tid: number, what: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${tid}/${what}`, 'utf8');
  } catch {
    return '';
  }
}

function tracerOf(pid: number, tid: number): number {
  return Number(/TracerPid:\s+(\d+)/.exec(readProc(pid, tid, 'status'))?.[1] ?? 0);
}

function sigstopPending(tid: number): boolean {
  const st = parseStatus(fs.readFileSync(`/proc/${tid}/status`, 'utf8'));
  return ((st.sigPnd | st.shdPnd) & (1n << BigInt(SIGSTOP - 1))) !== 0n;
}

/**
 * After the seize, a thread in a group stop traps twice (the seize's trap, then our
 * interrupt's): the second is taken here. A SIGSTOP still queued (sent again to a stopped
 * task, or just sent) cannot be blocked, and would stop an injected syscall: it is dequeued
 * here at a signal-delivery stop and dropped (as CRIU's compel does), with every other
 * signal blocked meanwhile so that none is dequeued with it. Returns the stop signal.
 */
function settleStop(tid: number, first: WaitResult & { kind: 'stopped' }): { stopSigno: number; pending: boolean } {
  let stopSigno = STOP_SIGNALS.has(first.signal) ? first.signal : 0;
  if (stopSigno) {
    cont(tid);
    const w = nextStop(tid);
    if (w.kind !== 'stopped') throw new StasisError('E_NO_PROCESS', `Thread ${tid} exited while being frozen`);
  }
  let pending = false;
  if (sigstopPending(tid)) {
    const mask = getSigmask(tid);
    setSigmask(tid, ALL_SIGNALS);
    try {
      // One stop per resume: a trap still pending, or the SIGSTOP's signal-delivery stop.
      for (let i = 0; i < 8 && sigstopPending(tid); i++) {
        cont(tid);
        const w = nextStop(tid);
        if (w.kind !== 'stopped') throw new StasisError('E_NO_PROCESS', `Thread ${tid} exited while being frozen`);
      }
    } finally {
      setSigmask(tid, mask);
    }
    if (!stopSigno) {
      stopSigno = SIGSTOP;
      pending = true;
    }
  }
  return { stopSigno, pending };
}

function threadsOf(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
  } catch {
    return [];
  }
}

/** Whether thread `tid` of `pid` is gone or a zombie (Z) or dead (X). */
function threadExited(pid: number, tid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

/**
 * Seizes and stops one thread; null if it exited meanwhile, else its job-control stop. One in
 * `seized` was seized and interrupted already (seizeCgroup()): only its stop is waited for.
 */
function freezeThread(pid: number, tid: number, seized?: ReadonlySet<number>): { stopSigno: number; pending: boolean } | null {
  if (seized?.has(tid)) return stopSeized(pid, tid);
  try {
    // TRACESYSGOOD: a task at a syscall stop whose tracer dies is sent the stop's signal
    // (ptrace_report_syscall): SIGTRAP, which kills it, without the option; with it, the
    // stop's signal is SIGTRAP|0x80, no signal at all, and the task goes on.
    seize(tid, PTRACE_O.TRACESYSGOOD);
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ESRCH') {
      if (tid === pid) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
      return null;
    }
    // A thread that is exiting (a zombie until its group reaps it, or dead) refuses PTRACE_SEIZE
    // with EPERM: it is gone as one that exited is (zdtm thread-bomb, whose threads come and go).
    if (e instanceof SyscallError && e.code === 'EPERM' && tid !== pid && threadExited(pid, tid)) return null;
    const tracer = e instanceof SyscallError && e.code === 'EPERM' ? tracerOf(pid, tid) : 0;
    if (tracer) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}${tid !== pid ? ` (thread ${tid})` : ''}: it is traced by pid ${tracer}; stasis cannot checkpoint a ptrace relation`, { cause: e });
    }
    if (e instanceof SyscallError && e.code === 'EPERM') {
      throw new StasisError('E_DUMP_FAILED', `Cannot freeze pid ${pid} (thread ${tid}): ptrace is not allowed (already traced, a zombie, or not permitted)`, { cause: e });
    }
    throw e;
  }
  interrupt(tid);
  return stopSeized(pid, tid);
}

/** The stop of a thread seized and interrupted (here or by seizeCgroup()); null if it exited. */
function stopSeized(pid: number, tid: number): { stopSigno: number; pending: boolean } | null {
  const w = awaitInterruptStop(tid);
  if (!w) {
    if (tid === pid) throw new StasisError('E_NO_PROCESS', `Pid ${pid} exited while being frozen`);
    return null;
  }
  // A thread under seccomp would run stasis's injected syscalls through its filters (or,
  // in strict mode, be killed by them): they are suspended while stasis traces it.
  if (parseStatus(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')).seccomp) setOptions(tid, PTRACE_O.TRACESYSGOOD | PTRACE_O.SUSPEND_SECCOMP);
  return settleStop(tid, w);
}

/**
 * Waits for the interrupt stop of a thread stasis seized and interrupted. A signal-delivery
 * stop that comes first is given back as the kernel would have delivered it (PTRACE_CONT with
 * it); the interrupt stays pending. Null when the thread exited, or gave no stop in `timeoutMs`.
 */
export function awaitInterruptStop(tid: number, timeoutMs = Infinity): (WaitResult & { kind: 'stopped' }) | null {
  const bounded = timeoutMs !== Infinity;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const w = waitPid(tid, bounded);
    if (!w) {
      if (bounded && Date.now() > until) return null;
      if (bounded) sleepSync(1);
      continue;
    }
    if (w.kind !== 'stopped') return null;
    if (w.event === PTRACE_EVENT.STOP) return w;
    cont(tid, w.event === 0 ? w.signal : 0);
  }
}

/** Freezes process `pid`, every thread; those in `seized` were seized and interrupted already. */
export function freeze(pid: number, seized?: ReadonlySet<number>): Frozen {
  const f: Frozen = { pid, tids: [], rseqCs: new Map() };
  try {
    for (;;) {
      const fresh = threadsOf(pid).filter((t) => !f.tids.includes(t));
      if (fresh.length === 0) break;
      for (const tid of fresh) {
        const t = freezeThread(pid, tid, seized);
        if (!t) continue;
        f.tids.push(tid);
        // Before anything is injected: an injected syscall's return to user space may clear it.
        const cs = readRseqCs(tid);
        if (cs) f.rseqCs.set(tid, cs);
        // The group stop's signal is the same in every thread; a thread's own pending SIGSTOP stops them all.
        if (t.stopSigno && !f.stopSigno) {
          f.stopSigno = t.stopSigno;
          f.stopPending = t.pending;
        } else if (t.stopSigno && !t.pending) {
          f.stopPending = false;
        }
      }
    }
    if (!f.tids.includes(pid)) throw new StasisError('E_NO_PROCESS', `Cannot dump pid ${pid}: no such process`);
    f.tids.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
    return f;
  } catch (e) {
    thaw(f);
    throw e;
  }
}

/**
 * Lets every thread go, rseq_cs put back as it was. A process in a group stop goes back to
 * it by itself on detach; one whose pending SIGSTOP the freeze dropped gets it again first
 * (it stops before it runs).
 */
export function thaw(f: Frozen): void {
  for (const [tid, cs] of f.rseqCs) {
    try {
      writeBackRseqCs(tid, cs);
    } catch {
      /* gone */
    }
  }
  if (f.stopPending) {
    try {
      kill(f.pid, SIGSTOP);
    } catch {
      /* gone */
    }
  }
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
