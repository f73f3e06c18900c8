// The messages between the library (the caller's thread) and the engine worker, which owns
// ptrace for every operation it runs. Callbacks cannot cross a thread: options travel without
// them, and the worker sends what they would have been called with as events. A notify point
// must be answered before the run goes on (CRIU's notify scripts and RPC acks do that): the
// worker posts it and sleeps in Atomics.wait on the operation's control block until the
// caller's callback has returned.
import type { LogLevel } from '../log.js';
import type { ExitStatus, NotifyEvent, Progress } from '../api/types.js';

export type OpName = 'dump' | 'pre-dump' | 'restore';

/** Slots of an operation's control block (an Int32Array over a SharedArrayBuffer). */
export const CTL = {
  /** Set to 1 by the caller to cancel the run at its next safe point. */
  ABORT: 0,
  /** 0 while a notify point waits; the caller's answer: 1 done, 2 failed. */
  REPLY: 1,
  /** Byte length of the failure message (UTF-8, from CTL_TEXT_OFFSET). */
  TEXT_LEN: 2,
} as const;
export const CTL_TEXT_OFFSET = 16;
export const CTL_BYTES = 16 + 4096;

export type ToWorker =
  | {
    kind: 'op'; id: number; op: OpName;
    /** The options without their callbacks (structured-cloneable). */
    opts: Record<string, unknown>;
    /** The caller's log level, or null without a log. */
    logLevel: LogLevel | null;
    hasProgress: boolean;
    hasNotify: boolean;
    /** Watch the restored root and report its exit (restore without detach). */
    watchExit: boolean;
    control: SharedArrayBuffer;
  }
  /** Report the exit of a restored root (a detached restore whose caller now waits for it). */
  | { kind: 'watch'; id: number; pid: number };

export interface WireError {
  name: string;
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  stack?: string;
  cause?: WireError;
}

export type FromWorker =
  | { kind: 'progress'; id: number; p: Progress }
  | { kind: 'log'; id: number; lines: [LogLevel, string][] }
  | { kind: 'notify'; id: number; event: NotifyEvent; pid?: number }
  | { kind: 'restored'; id: number; pid: number }
  | { kind: 'done'; id: number; result: unknown }
  | { kind: 'failed'; id: number; error: WireError }
  | { kind: 'exit'; id: number; status: ExitStatus }
  | { kind: 'exit-failed'; id: number; error: WireError };

export function toWire(e: unknown, depth = 0): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
  const w: WireError = { name: x.name, message: x.message };
  if (typeof x.code === 'string') w.code = x.code;
  if (typeof x.errno === 'number') w.errno = x.errno;
  if (typeof x.syscall === 'string') w.syscall = x.syscall;
  if (x.stack !== undefined) w.stack = x.stack;
  if (x.cause !== undefined && depth < 8) w.cause = toWire(x.cause, depth + 1);
  return w;
}
