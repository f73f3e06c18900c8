// A thread's scheduling: policy (with SCHED_RESET_ON_FORK), real-time priority, nice and CPU
// affinity, read and set from outside by tid (stasis is root: CAP_SYS_NICE).
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const SCHED_OTHER = 0, SCHED_FIFO = 1, SCHED_RR = 2, SCHED_BATCH = 3, SCHED_IDLE = 5, SCHED_DEADLINE = 6;
export const SCHED_RESET_ON_FORK = 0x40000000;
const PRIO_PROCESS = 0;
/** Bytes of the affinity masks stasis asks for: 8192 CPUs, far beyond any nr_cpu_ids here. */
const AFFINITY_BYTES = 1024;

export interface SchedParams {
  /** sched_getscheduler(): the policy, with SCHED_RESET_ON_FORK or'ed in (as CRIU keeps it). */
  policy: number;
  /** sched_priority: 1-99 for SCHED_FIFO and SCHED_RR, else 0. */
  prio: number;
  /** -20..19. */
  nice: number;
}

function must(name: 'sched_getscheduler' | 'sched_getparam' | 'getpriority' | 'sched_setscheduler' | 'setpriority' | 'sched_getaffinity' | 'sched_setaffinity', r: bigint, tid: number): bigint {
  if (r < 0n) throw new SyscallError(name, Number(-r), `tid ${tid}`);
  return r;
}

export function getSched(tid: number): SchedParams {
  const policy = Number(must('sched_getscheduler', syscallRaw('sched_getscheduler', tid), tid));
  const p = Buffer.alloc(4);
  must('sched_getparam', syscallRaw('sched_getparam', tid, addressOf(p)), tid);
  keepAlive(p);
  // The raw syscall returns 20 - nice (1..40), never a negative number but for an error.
  const n = must('getpriority', syscallRaw('getpriority', PRIO_PROCESS, tid), tid);
  return { policy, prio: p.readInt32LE(0), nice: 20 - Number(n) };
}

/**
 * Nice first: sched_setscheduler() keeps the nice a task has. A real-time thread keeps its
 * nice too (it comes back if the thread returns to SCHED_OTHER).
 */
export function setSched(tid: number, s: SchedParams): void {
  must('setpriority', syscallRaw('setpriority', PRIO_PROCESS, tid, s.nice), tid);
  const p = Buffer.alloc(4);
  p.writeInt32LE(s.prio, 0);
  must('sched_setscheduler', syscallRaw('sched_setscheduler', tid, s.policy, addressOf(p)), tid);
  keepAlive(p);
}

/** The CPUs a thread may run on, as 64-bit words of the kernel's mask (CPU n is bit n % 64 of word n / 64). */
export function getAffinity(tid: number): bigint[] {
  const b = Buffer.alloc(AFFINITY_BYTES);
  const n = Number(must('sched_getaffinity', syscallRaw('sched_getaffinity', tid, AFFINITY_BYTES, addressOf(b)), tid));
  keepAlive(b);
  const words: bigint[] = [];
  for (let o = 0; o + 8 <= n; o += 8) words.push(b.readBigUInt64LE(o));
  while (words.length > 1 && words[words.length - 1] === 0n) words.pop();
  return words;
}

/** Sets a thread's CPUs; returns the mask it got (the kernel drops CPUs this machine lacks). */
export function setAffinity(tid: number, words: bigint[]): bigint[] {
  const b = Buffer.alloc(Math.max(8, words.length * 8));
  words.forEach((w, i) => b.writeBigUInt64LE(w, i * 8));
  must('sched_setaffinity', syscallRaw('sched_setaffinity', tid, b.length, addressOf(b)), tid);
  keepAlive(b);
  return getAffinity(tid);
}

/** The calling thread's nice set to `nice` where stasis may (no error where it may not); the nice it had. */
export function setOwnNice(nice: number): number {
  const tid = Number(syscallRaw('gettid'));
  const r = syscallRaw('getpriority', PRIO_PROCESS, tid);
  syscallRaw('setpriority', PRIO_PROCESS, tid, nice);
  return r < 0n ? 0 : 20 - Number(r);
}
