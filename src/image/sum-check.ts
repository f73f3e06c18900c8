// The CRC-32s of big pages files checked on the other core while restore builds the tree:
// restore's address-space fill is the tasks' own preadv (the kernel copies), so stasis's
// thread mostly waits meanwhile, and the ~0.3 s/GiB of summing is no longer in series
// with it. restore() waits for the verdict before any task of the tree runs (issue 15);
// restore --lazy-pages lets the tree run at once, and its filler kills the tree if the
// verdict says damage (the restore then fails), and ends only once the verdict is in.
// The worker only reads files; it is eval'd code with Node's built-ins alone, so it needs no
// path of its own inside the CLI bundle.
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { StasisError } from '../errors.js';
import type { DeferredSum, FileSum } from './image-sums.js';

const CODE = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const zlib = require('node:zlib');
const { files, port, done } = workerData;
const flag = new Int32Array(done);
const buf = Buffer.allocUnsafe(4 << 20);
let verdict = { ok: true };
try {
  for (const f of files) {
    const fd = fs.openSync(f.file, 'r');
    let crc = 0, size = 0;
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, size);
        if (n === 0) break;
        crc = zlib.crc32(buf.subarray(0, n), crc);
        size += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    if (size !== f.size || crc.toString(16).padStart(8, '0') !== f.crc32) { verdict = { ok: false, file: f.file, size }; break; }
  }
} catch (e) {
  verdict = { ok: false, error: String(e && e.message || e) };
}
port.postMessage(verdict);
Atomics.store(flag, 1, verdict.ok ? 0 : 1);
Atomics.store(flag, 0, 1);
Atomics.notify(flag, 0);
`;

interface Verdict {
  ok: boolean;
  file?: string;
  size?: number;
  error?: string;
}

/** A check running on another thread; wait() blocks until it has its verdict and throws on damage. */
export class SumCheck {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  /** [0]: 1 once the verdict is in; [1]: 1 if it found damage (restore --lazy-pages's filler watches both). */
  private readonly done = new Int32Array(new SharedArrayBuffer(8));
  private verdict: Verdict | undefined;

  constructor(private readonly files: DeferredSum[]) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(CODE, { eval: true, workerData: { files, port: port2, done: this.done.buffer }, transferList: [port2] });
    // Never what keeps the process alive: a failed restore that forgot it must still exit.
    this.worker.unref();
    this.port.unref();
  }

  /** The verdict's flags, for another thread to watch (SumCheck.done). */
  get flags(): SharedArrayBuffer {
    return this.done.buffer as SharedArrayBuffer;
  }

  /** Blocks until every file is summed; throws E_CORRUPT (or E_TRUNCATED) naming the first that differs. */
  wait(): void {
    if (!this.verdict) {
      Atomics.wait(this.done, 0, 0);
      this.verdict = (receiveMessageOnPort(this.port)?.message as Verdict | undefined) ?? { ok: false, error: 'the checking thread gave no verdict' };
      void this.worker.terminate();
    }
    const v = this.verdict;
    if (v.ok) return;
    if (v.error !== undefined) throw new StasisError('E_CORRUPT', `Cannot check the images' CRC-32s: ${v.error}`);
    const want = this.files.find((f) => f.file === v.file)!;
    if (v.size !== want.size) {
      throw new StasisError((v.size ?? 0) < want.size ? 'E_TRUNCATED' : 'E_CORRUPT', `${v.file} is damaged: it holds ${v.size} bytes, ${want.size} were written`);
    }
    throw new StasisError('E_CORRUPT', `${v.file} is damaged: its CRC-32 differs from the one written with it`);
  }

  /** The damage found, if the verdict is in and says so (never blocks). */
  damage(): StasisError | undefined {
    if (Atomics.load(this.done, 0) === 0) return undefined;
    try {
      this.wait();
      return undefined;
    } catch (e) {
      return e as StasisError;
    }
  }

  /** Stops the check (a restore that failed for another reason). */
  cancel(): void {
    if (!this.verdict) {
      this.verdict = { ok: true };
      void this.worker.terminate();
    }
  }
}

const RING_CODE = `
const { workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const { bufs, ctl } = workerData;
// ctl: [0] stop, [1] result crc, [2] result ready, then per slot: state (1: full), length.
const c = new Int32Array(ctl);
const views = bufs.map((b) => Buffer.from(b));
let crc = 0;
(function run() {
for (let i = 0; ; i = (i + 1) % views.length) {
  const st = 3 + i * 2;
  while (Atomics.load(c, st) !== 1) {
    if (Atomics.load(c, 0) === 1 && Atomics.load(c, st) !== 1) {
      Atomics.store(c, 1, crc | 0);
      Atomics.store(c, 2, 1);
      Atomics.notify(c, 2);
      return;
    }
    Atomics.wait(c, st, 0, 50);
  }
  crc = zlib.crc32(views[i].subarray(0, Atomics.load(c, st + 1)), crc);
  Atomics.store(c, st, 0);
  Atomics.notify(c, st);
}
})();
`;

/** How long the writer waits for the summing thread before it gives up on it. */
const STALL_MS = 30000;

function waitWhile(ctl: Int32Array, at: number, value: number): void {
  const until = performance.now() + STALL_MS;
  while (Atomics.load(ctl, at) === value) {
    // Its 'exit' event cannot arrive while this thread blocks: a thread that died is noticed by the clock.
    if (performance.now() > until) throw new StasisError('E_INTERNAL', 'The thread summing the pages written stopped answering');
    Atomics.wait(ctl, at, value, 50);
  }
}

/**
 * A CRC-32 of bytes written in order, computed on another thread: the writer fills the ring's
 * buffers in turn (acquire, fill, write them out, release) while the thread sums those
 * released before, so summing no longer sits in series with copying (issue 15).
 */
export class RingSum {
  private readonly worker: Worker;
  private readonly ctl: Int32Array;
  private readonly bufs: Buffer[];
  private next = 0;
  private size = 0;
  private result: FileSum | undefined;

  constructor(slots: number, slotBytes: number) {
    const sabs = Array.from({ length: slots }, () => new SharedArrayBuffer(slotBytes));
    this.bufs = sabs.map((s) => Buffer.from(s));
    this.ctl = new Int32Array(new SharedArrayBuffer(4 * (3 + slots * 2)));
    this.worker = new Worker(RING_CODE, { eval: true, workerData: { bufs: sabs, ctl: this.ctl.buffer } });
    this.worker.unref();
  }

  /** The next buffer to fill, once the thread has summed what it held. */
  acquire(): Buffer {
    const st = 3 + this.next * 2;
    waitWhile(this.ctl, st, 1);
    return this.bufs[this.next]!;
  }

  /** The buffer acquire() gave holds `len` bytes, written to the file: to be summed. */
  release(len: number): void {
    const st = 3 + this.next * 2;
    Atomics.store(this.ctl, st + 1, len);
    Atomics.store(this.ctl, st, 1);
    Atomics.notify(this.ctl, st);
    this.size += len;
    this.next = (this.next + 1) % this.bufs.length;
  }

  /** Waits for the thread to sum every released buffer: size and CRC-32, as StreamSum gives them. */
  finish(): FileSum {
    if (!this.result) {
      Atomics.store(this.ctl, 0, 1);
      for (let i = 0; i < this.bufs.length; i++) Atomics.notify(this.ctl, 3 + i * 2);
      waitWhile(this.ctl, 2, 0);
      this.result = { size: this.size, crc32: (Atomics.load(this.ctl, 1) >>> 0).toString(16).padStart(8, '0') };
      void this.worker.terminate();
    }
    return this.result;
  }
}
