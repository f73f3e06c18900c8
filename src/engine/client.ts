// The caller's side of the engine: starts the worker on first use, sends it operations, turns
// its events back into the caller's callbacks, and settles each operation's promise. The
// worker keeps the process alive only while an operation runs or a restored root is waited for.
import { Worker, SHARE_ENV } from 'node:worker_threads';
import { StasisError, type StasisErrorCode } from '../errors.js';
import type { Log } from '../log.js';
import type { ExitStatus, Notify, Progress } from '../api/types.js';
import { CTL, CTL_BYTES, CTL_TEXT_OFFSET, type FromWorker, type OpName, type ToWorker, type WireError } from './protocol.js';

export interface OpHooks {
  onProgress?: ((p: Progress) => void) | undefined;
  log?: Log | undefined;
  /** May return a promise: the run waits until it settles. */
  notify?: ((...a: Parameters<Notify>) => void | Promise<void>) | undefined;
  onRestored?: ((pid: number) => void) | undefined;
  signal?: AbortSignal | undefined;
}

interface Pending {
  hooks: OpHooks;
  ctl: Int32Array;
  text: Uint8Array;
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
  /** Notify answers in order: a callback that returns a promise is awaited before the next. */
  notifyChain: Promise<void>;
}

interface ExitWait {
  resolve: (s: ExitStatus) => void;
  reject: (e: unknown) => void;
}

export class Engine {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly ops = new Map<number, Pending>();
  private readonly exits = new Map<number, ExitWait>();
  private refs = 0;

  /** Runs an operation in the worker; settles with its result (what the in-thread function returns). */
  run(op: OpName, opts: Record<string, unknown>, hooks: OpHooks, watchExit = false): { id: number; done: Promise<unknown>; exited?: Promise<ExitStatus> } {
    const id = this.nextId++;
    // The waiter for the root's exit exists before any message can report it.
    const exited = watchExit && !hooks.signal?.aborted ? this.exitWaiter(id) : undefined;
    const control = new SharedArrayBuffer(CTL_BYTES);
    const ctl = new Int32Array(control, 0, 4);
    const done = new Promise<unknown>((resolve, reject) => {
      const sig = hooks.signal;
      if (sig?.aborted) {
        reject(new StasisError('E_ABORTED', `Cancelled the ${op} before it began`, { cause: sig.reason }));
        return;
      }
      const onAbort = () => Atomics.store(ctl, CTL.ABORT, 1);
      sig?.addEventListener('abort', onAbort, { once: true });
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        sig?.removeEventListener('abort', onAbort);
        f(v);
      };
      const msg: ToWorker = {
        kind: 'op', id, op, opts, logLevel: hooks.log && hooks.log.level > 0 ? hooks.log.level : null,
        hasProgress: hooks.onProgress !== undefined, hasNotify: hooks.notify !== undefined, watchExit, control,
      };
      // First: options that cannot be cloned throw here, before anything waits for the run.
      this.start().postMessage(msg);
      this.ops.set(id, { hooks, ctl, text: new Uint8Array(control, CTL_TEXT_OFFSET), resolve: settle(resolve), reject: settle(reject), notifyChain: Promise.resolve() });
      this.ref(1);
    });
    return exited ? { id, done, exited } : { id, done };
  }

  /** The exit of a restored root, watched from now (a detached restore's caller waits for it after all). */
  exitOf(pid: number): Promise<ExitStatus> {
    const id = this.nextId++;
    const p = this.exitWaiter(id);
    this.start().postMessage({ kind: 'watch', id, pid } satisfies ToWorker);
    return p;
  }

  private exitWaiter(id: number): Promise<ExitStatus> {
    const p = new Promise<ExitStatus>((resolve, reject) => {
      this.exits.set(id, { resolve, reject });
    });
    // Rejected only when the run or the engine failed, which the caller hears from the run itself.
    p.catch(() => {});
    this.ref(1);
    return p;
  }

  /** Starts the worker now (the first run would); resolves once it runs. */
  warm(): Promise<void> {
    const w = this.start();
    return this.online ?? (this.online = new Promise((resolve, reject) => {
      w.once('online', resolve);
      w.once('error', reject);
    }));
  }
  private online: Promise<void> | null = null;

  private ref(n: number): void {
    this.refs += n;
    if (!this.worker) return;
    if (this.refs > 0) this.worker.ref();
    else this.worker.unref();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./worker.js', import.meta.url), { env: SHARE_ENV });
    w.on('message', (m: FromWorker) => this.onMessage(m));
    // A worker that dies takes every operation in it along: they fail, and the next starts a new one.
    const fail = (why: string) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.online = null;
      const err = new StasisError('E_INTERNAL', `The stasis engine thread ${why}`);
      for (const [id, p] of this.ops) {
        this.ops.delete(id);
        p.reject(err);
      }
      for (const [id, x] of this.exits) {
        this.exits.delete(id);
        x.reject(err);
      }
      this.refs = 0;
    };
    w.on('error', (e) => fail(`failed: ${e.message}`));
    w.on('exit', (code) => fail(`exited with code ${code}`));
    this.worker = w;
    if (this.refs <= 0) w.unref();
    return w;
  }

  private onMessage(m: FromWorker): void {
    if (m.kind === 'exit' || m.kind === 'exit-failed') {
      const x = this.exits.get(m.id);
      this.exits.delete(m.id);
      if (!x) return;
      this.ref(-1);
      if (m.kind === 'exit') x.resolve(m.status);
      else x.reject(fromWire(m.error));
      return;
    }
    const p = this.ops.get(m.id);
    if (!p) return;
    switch (m.kind) {
      case 'progress':
        call(() => p.hooks.onProgress?.(m.p));
        return;
      case 'log':
        for (const [level, line] of m.lines) {
          const log = p.hooks.log!;
          call(() => (level === 1 ? log.error(line) : level === 2 ? log.warn(line) : level === 3 ? log.info(line) : log.debug(line)));
        }
        return;
      case 'restored':
        call(() => p.hooks.onRestored?.(m.pid));
        return;
      case 'notify':
        p.notifyChain = p.notifyChain.then(async () => {
          try {
            await p.hooks.notify!(m.event, m.pid);
            answer(p, 1, '');
          } catch (e) {
            answer(p, 2, e instanceof Error ? e.message : String(e));
          }
        });
        return;
      case 'done':
      case 'failed':
        this.ops.delete(m.id);
        this.ref(-1);
        if (m.kind === 'done') {
          p.resolve(m.result);
          return;
        }
        const err = fromWire(m.error);
        p.reject(err);
        // A restore that failed has no root to wait for.
        const x = this.exits.get(m.id);
        if (x) {
          this.exits.delete(m.id);
          this.ref(-1);
          x.reject(err);
        }
        return;
    }
  }
}

/** Progress and log callbacks of the caller cannot fail the run from here: their errors are theirs. */
function call(f: () => void): void {
  try {
    f();
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

function answer(p: Pending, code: 1 | 2, message: string): void {
  const bytes = Buffer.from(message, 'utf8').subarray(0, p.text.length);
  p.text.set(bytes);
  Atomics.store(p.ctl, CTL.TEXT_LEN, bytes.length);
  Atomics.store(p.ctl, CTL.REPLY, code);
  Atomics.notify(p.ctl, CTL.REPLY);
}

const CODES = new Set<string>([
  'E_NO_PROCESS', 'E_UNSUPPORTED', 'E_BAD_MAGIC', 'E_TRUNCATED', 'E_CORRUPT', 'E_PID_TAKEN', 'E_NO_IMAGE', 'E_BAD_ARGS',
  'E_DUMP_FAILED', 'E_RESTORE_FAILED', 'E_INJECT', 'E_GHOST_LIMIT', 'E_ABORTED', 'E_INTERNAL',
] satisfies StasisErrorCode[]);

/** The worker's error as the caller's: a StasisError keeps its code, any error its errno and stack. */
export function fromWire(w: WireError): Error {
  const cause = w.cause ? fromWire(w.cause) : undefined;
  const opt = cause ? { cause } : undefined;
  let e: Error;
  if (w.name === 'StasisError' && w.code && CODES.has(w.code)) e = new StasisError(w.code as StasisErrorCode, w.message, opt);
  else {
    const x: Error & { errno?: number; syscall?: string; code?: string } = new Error(w.message, opt);
    x.name = w.name;
    if (w.code !== undefined) x.code = w.code;
    if (w.errno !== undefined) x.errno = w.errno;
    if (w.syscall !== undefined) x.syscall = w.syscall;
    e = x;
  }
  if (w.stack !== undefined) e.stack = `${e.name}: ${e.message}\n    (in the stasis engine thread)\n${w.stack.split('\n').slice(1).join('\n')}`;
  return e;
}
