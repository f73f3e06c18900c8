// The engine: a worker thread that runs dumps, pre-dumps and restores for the library. ptrace
// is per thread (a tracee's stops are reported to the thread that attached it), so each
// operation runs here from its first PTRACE_SEIZE to its last wait4, synchronously, while the
// caller's thread stays free. One thread for the process's lifetime, operations one after
// the other: the tasks a restore creates are children of this thread, and a parent thread
// that exits would fire their parent-death signals.
import { parentPort } from 'node:worker_threads';
import { dump } from '../dump/dump.js';
import { preDump } from '../dump/pre-dump.js';
import { restore } from '../restore/restore.js';
import { waitPid } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { Log, LogLevel } from '../log.js';
import type { DumpOptions, NotifyEvent, PreDumpOptions, Progress, RestoreOptions } from '../api/types.js';
import { CTL, CTL_TEXT_OFFSET, toWire, type FromWorker, type OpName, type ToWorker } from './protocol.js';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

/**
 * The progress phases at which a run can stop and undo cleanly: a dump and a pre-dump at any
 * (each thaws what it froze and removes what it wrote); a restore only before it creates
 * anything, or while it builds tasks (a failure there kills what it made).
 */
const ABORTABLE: Record<OpName, (phase: string) => boolean> = {
  dump: () => true,
  'pre-dump': () => true,
  restore: (p) => p === 'verifying images' || p === 'reading images' || p === 'creating tasks' || p === 'restoring tasks',
};

/** Lines go to the caller in batches: at most every 50 ms or 200 lines, and before anything waits on it. */
class PostedLog implements Log {
  private lines: [LogLevel, string][] = [];
  private last = performance.now();
  constructor(private readonly id: number, readonly level: LogLevel) {}
  private add(l: LogLevel, msg: string): void {
    if (this.level < l) return;
    this.lines.push([l, msg]);
    if (this.lines.length >= 200 || performance.now() - this.last > 50) this.flush();
  }
  error(m: string): void { this.add(1, m); }
  warn(m: string): void { this.add(2, m); }
  info(m: string): void { this.add(3, m); }
  debug(m: string): void { this.add(4, m); }
  flush(): void {
    this.last = performance.now();
    if (!this.lines.length) return;
    post({ kind: 'log', id: this.id, lines: this.lines });
    this.lines = [];
  }
}

function runOp(req: Extract<ToWorker, { kind: 'op' }>): void {
  const ctl = new Int32Array(req.control, 0, 4);
  const text = new Uint8Array(req.control, CTL_TEXT_OFFSET);
  const log = req.logLevel !== null ? new PostedLog(req.id, req.logLevel) : undefined;
  const what = req.op === 'restore' ? `restore ${String(req.opts.imagesDir)}` : `${req.op} pid ${String(req.opts.pid)}`;
  const abortCheck = (phase: string) => {
    if (Atomics.load(ctl, CTL.ABORT) !== 0 && ABORTABLE[req.op](phase)) {
      throw new StasisError('E_ABORTED', `Cancelled the ${what} at "${phase}": ${req.op === 'restore' ? 'nothing it made is left' : 'the tree runs on as it was'}`);
    }
  };
  let lastPhase = '';
  let lastPost = 0;
  const onProgress = (p: Progress) => {
    abortCheck(p.phase);
    if (!req.hasProgress) return;
    const now = performance.now();
    if (p.phase === lastPhase && now - lastPost < 20 && p.done < p.total) return;
    lastPhase = p.phase;
    lastPost = now;
    post({ kind: 'progress', id: req.id, p });
  };
  const notify = (event: NotifyEvent, pid?: number) => {
    log?.flush();
    Atomics.store(ctl, CTL.REPLY, 0);
    post({ kind: 'notify', id: req.id, event, ...(pid !== undefined ? { pid } : {}) });
    while (Atomics.load(ctl, CTL.REPLY) === 0) Atomics.wait(ctl, CTL.REPLY, 0);
    if (Atomics.load(ctl, CTL.REPLY) !== 1) {
      // A plain error, as a failing notify callback in the caller's thread would be.
      throw new Error(Buffer.from(text.subarray(0, Atomics.load(ctl, CTL.TEXT_LEN))).toString('utf8'));
    }
  };
  const io = { onProgress, ...(log ? { log } : {}), ...(req.hasNotify ? { notify } : {}) };
  try {
    if (Atomics.load(ctl, CTL.ABORT) !== 0) throw new StasisError('E_ABORTED', `Cancelled the ${what} before it began`);
    let result: unknown;
    switch (req.op) {
      case 'dump':
        result = dump({ ...(req.opts as unknown as DumpOptions), ...io });
        break;
      case 'pre-dump':
        result = preDump({ ...(req.opts as unknown as PreDumpOptions), ...io });
        break;
      case 'restore': {
        // The restore returns once the tree runs; its root's exit is watched from here.
        const r = restore({ ...(req.opts as unknown as RestoreOptions), ...io, detach: true, onRestored: (pid) => post({ kind: 'restored', id: req.id, pid }) });
        if (req.watchExit) watch(req.id, r.pid);
        result = r;
        break;
      }
    }
    log?.flush();
    post({ kind: 'done', id: req.id, result });
  } catch (e) {
    log?.flush();
    post({ kind: 'failed', id: req.id, error: toWire(e) });
  }
}

// Restored roots whose exit someone waits for: polled, since this thread must stay free for
// the next operation (no wait4 that blocks, and Node has no handle for a pidfd).
const watched = new Map<number, number>();
let poller: NodeJS.Timeout | undefined;

function watch(id: number, pid: number): void {
  watched.set(pid, id);
  poller ??= setInterval(pollExits, 10);
}

function pollExits(): void {
  for (const [pid, id] of watched) {
    try {
      const w = waitPid(pid, true);
      if (!w || (w.kind !== 'exited' && w.kind !== 'signaled')) continue;
      watched.delete(pid);
      post({ kind: 'exit', id, status: w.kind === 'exited' ? { kind: 'exited', code: w.code } : { kind: 'signaled', signal: w.signal } });
    } catch (e) {
      watched.delete(pid);
      post({ kind: 'exit-failed', id, error: toWire(e) });
    }
  }
  if (!watched.size && poller) {
    clearInterval(poller);
    poller = undefined;
  }
}

port.on('message', (m: ToWorker) => {
  if (m.kind === 'op') runOp(m);
  else watch(m.id, m.pid);
});
