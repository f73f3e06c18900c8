// The library surface. The CLI is a thin wrapper over these functions.
import path from 'node:path';
import { probeKernel, saveKernelFeatures, type KernelFeatures } from '../sys/index.js';
import { dump as dumpTree } from '../dump/dump.js';
import { restore as restoreTree } from '../restore/restore.js';
import { preDump as preDumpTree } from '../dump/pre-dump.js';
import { trackingReport } from '../dump/incremental.js';
import { StasisError } from '../errors.js';
import type { Engine, OpHooks } from '../engine/client.js';
import type { DumpOptions, DumpResult, PreDumpOptions, PreDumpResult, RestoreOptions, RestoreResult, RestoredTree, RunHooks } from './types.js';

export * from './types.js';
export { startTask, waitTask, killTask, type StartOptions } from './tasks.js';
export { StasisError, type StasisErrorCode } from '../errors.js';
export { inspect } from './inspect.js';

// Every run of the library goes to the engine thread (src/engine): ptrace is per thread, and a
// dump of a large tree, or a restore's wait for its root, must not stop the caller's event loop.
// Loaded on first use: the command line, which runs in-thread, never pays for it.
let engineP: Promise<Engine> | undefined;
function engineOf(): Promise<Engine> {
  return (engineP ??= import('../engine/client.js').then((m) => new m.Engine()));
}

function hooksOf(o: RunHooks & { onRestored?: ((pid: number) => void) | undefined }): OpHooks {
  return { onProgress: o.onProgress, log: o.log, notify: o.notify, signal: o.signal, onRestored: o.onRestored };
}

function plainOf(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'onProgress' || k === 'log' || k === 'notify' || k === 'signal' || k === 'onRestored' || v === undefined) continue;
    if (typeof v === 'function') throw new StasisError('E_BAD_ARGS', `The option ${k} is a function stasis does not know`);
    // The engine thread may have a cwd of its own (src/sys/thread-cwd.ts): paths go as the caller means them.
    out[k] = k === 'imagesDir' && typeof v === 'string' ? path.resolve(v) : v;
  }
  return out;
}

/**
 * Starts the engine thread now rather than at the first run (which would pay its ~30 ms of
 * synchronous set-up on the caller's thread, and its module loading before it begins).
 */
export async function startEngine(): Promise<void> {
  return (await engineOf()).warm();
}

/**
 * Checkpoints the process tree rooted at `opts.pid` into `opts.imagesDir`, in the engine
 * thread; `signal` cancels it with the tree left running as it was.
 */
export async function dump(opts: DumpOptions): Promise<DumpResult> {
  const plain = plainOf(opts);
  return (await (await engineOf()).run('dump', plain, hooksOf(opts)).done) as DumpResult;
}

/**
 * Restores the tree in `opts.imagesDir`, in the engine thread; resolves once the tree runs,
 * with its pids and `wait()` for its root's exit.
 */
export async function restore(opts: RestoreOptions): Promise<RestoredTree> {
  const plain = plainOf(opts);
  const engine = await engineOf();
  const run = engine.run('restore', plain, hooksOf(opts), !opts.detach && !opts.sibling);
  const r = (await run.done) as RestoreResult;
  let exited = run.exited;
  // A sibling root is a child of this process's parent: its exit goes there, not here.
  const wait = opts.sibling
    ? () => Promise.reject(new StasisError('E_BAD_ARGS', `The root ${r.pid} was restored as a sibling (sibling: true): its exit goes to this process's parent, which reaps it`))
    : () => (exited ??= engine.exitOf(r.pid));
  return { pid: r.pid, pids: r.pids, totalMs: r.totalMs, ...(r.lazy ? { lazy: r.lazy } : {}), wait };
}

/**
 * Incremental pre-dump: memory only, the tree frozen only while it is looked at, then left
 * running with its memory tracked; a later dump (or pre-dump) with `prevImagesDir` pointing
 * here writes only what changed. Runs in the engine thread.
 */
export async function preDump(opts: PreDumpOptions): Promise<PreDumpResult> {
  const plain = plainOf(opts);
  return (await (await engineOf()).run('pre-dump', plain, hooksOf(opts)).done) as PreDumpResult;
}

/**
 * `dump()` on the caller's thread, which it blocks (no thread to start: the command line's
 * mode). The thread becomes the tracer: a later run on the same tree must come from it too.
 */
export function dumpSync(opts: DumpOptions): DumpResult {
  return dumpTree(opts);
}

/** `restore()` on the caller's thread; without `detach` it returns only once the root has exited. */
export function restoreSync(opts: RestoreOptions): RestoreResult {
  return restoreTree(opts);
}

/** `preDump()` on the caller's thread, which it blocks. */
export function preDumpSync(opts: PreDumpOptions): PreDumpResult {
  return preDumpTree(opts);
}

export interface CheckResult extends KernelFeatures {
  /** Everything a dump and restore need is there. */
  ready: boolean;
  /** The dirty-tracking backend pre-dumps use here (uffd, soft-dirty or hash). */
  dirtyTracking: string;
  /** Backends that cannot run here, and why. */
  trackingUnavailable: Record<string, string>;
}

/** Probes the kernel features stasis uses (afresh, and keeps them for the dumps of this boot). */
export function check(): CheckResult {
  const k = probeKernel();
  saveKernelFeatures(k);
  const t = trackingReport(k);
  return { ...k, ready: k.kcmp && k.pidfdGetfd && k.clone3SetTid, dirtyTracking: t.backend, trackingUnavailable: t.unavailable };
}
