// The CRC-32s of big pages files checked on the other core while restore builds the tree:
// restore's address-space fill is the tasks' own preadv (the kernel copies), so stasis's
// thread mostly waits meanwhile, and the ~0.3 s/GiB of summing is no longer in series
// with it. restore() waits for the verdict before any task of the tree runs (issue 15).
// (restore --lazy-pages leaves the pages files with CRC-32s per chunk to its filler, which
// checks each chunk before a byte of it goes into a task: lazy-filler.ts.)
// The workers are eval'd code with Node's built-ins alone (and koffi, to read memory by its
// address), so they need no path of their own inside the CLI bundle.
import type { MessagePort, Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
// node:worker_threads when a thread is started, not at load: loading it costs every command about 3 ms.
// (Built-ins loaded on first use; the require made then: see koffi-addon.ts on the start-up snapshot.)
const threads = () => createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
import { StasisError } from '../errors.js';
import { SUM_CHUNK, sizeDamaged, type DeferredSum, type FileSum } from './image-sums.js';
import { CRC32_AT_CODE, crcWorkerData } from '../sys/crc32-code.js';

/**
 * A worker's own stdout and stderr kept apart (it writes neither): else the Worker's
 * constructor pipes them into process.stdout and process.stderr, which makes those streams
 * where the command had not, 12 ms of a big dump's profile before its first page was written.
 */
export const QUIET = { stdout: true, stderr: true } as const;

const CODE = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
${CRC32_AT_CODE}
const { files, port, done, CHUNK } = workerData;
const flag = new Int32Array(done);
const buf = Buffer.allocUnsafe(4 << 20);
let verdict = { ok: true };
try {
  const hex = (c) => (c >>> 0).toString(16).padStart(8, '0');
  for (const f of files) {
    const fd = fs.openSync(f.file, 'r');
    // A whole-file CRC-32 (crc32), or one per chunk (chunks, each checked as it ends).
    let crc = 0, size = 0, bad = -1;
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, size);
        if (n === 0) break;
        for (let at = 0; at < n; ) {
          const k = f.chunks === undefined ? n - at : Math.min(CHUNK - (size % CHUNK), n - at);
          crc = crc32(buf.subarray(at, at + k), crc);
          size += k;
          at += k;
          if (f.chunks !== undefined && (size % CHUNK === 0 || size === f.size)) {
            const i = Math.ceil(size / CHUNK) - 1;
            if (hex(crc) !== f.chunks.slice(i * 8, i * 8 + 8)) { bad = i; break; }
            crc = 0;
          }
        }
        if (bad >= 0) break;
      }
    } finally {
      fs.closeSync(fd);
    }
    if (bad >= 0 || size !== f.size || (f.chunks === undefined && hex(crc) !== f.crc32)) { verdict = { ok: false, file: f.file, size, chunk: bad }; break; }
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
  /** The chunk whose CRC-32 differs (-1: the whole file's, or its size). */
  chunk?: number;
  error?: string;
}

/** A check running on another thread; wait() blocks until it has its verdict and throws on damage. */
export class SumCheck {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  /** [0]: 1 once the verdict is in; [1]: 1 if it found damage. */
  private readonly done = new Int32Array(new SharedArrayBuffer(8));
  private verdict: Verdict | undefined;

  constructor(private readonly files: DeferredSum[]) {
    const { port1, port2 } = new (threads().MessageChannel)();
    this.port = port1;
    this.worker = new (threads().Worker)(CODE, { eval: true, workerData: { files, port: port2, done: this.done.buffer, CHUNK: SUM_CHUNK, ...crcWorkerData() }, transferList: [port2], ...QUIET });
    // Never what keeps the process alive: a failed restore that forgot it must still exit.
    this.worker.unref();
    this.port.unref();
  }

  /** Blocks until every file is summed; throws E_CORRUPT (or E_TRUNCATED) naming the first that differs. */
  wait(): void {
    if (!this.verdict) {
      Atomics.wait(this.done, 0, 0);
      this.verdict = (threads().receiveMessageOnPort(this.port)?.message as Verdict | undefined) ?? { ok: false, error: 'the checking thread gave no verdict' };
      void this.worker.terminate();
    }
    const v = this.verdict;
    if (v.ok) return;
    if (v.error !== undefined) throw new StasisError('E_CORRUPT', `Cannot check the images' CRC-32s: ${v.error}`);
    const want = this.files.find((f) => f.file === v.file)!;
    if ((v.chunk ?? -1) >= 0) {
      const at = v.chunk! * SUM_CHUNK;
      throw new StasisError('E_CORRUPT', `${v.file} is damaged: its CRC-32 of bytes ${at}-${Math.min(at + SUM_CHUNK, want.size)} differs from the one written with it`);
    }
    if (v.size !== want.size) throw sizeDamaged(v.file!, v.size ?? 0, want.size);
    throw new StasisError('E_CORRUPT', `${v.file} is damaged: its CRC-32 differs from the one written with it`);
  }

  /** Stops the check (a restore that failed for another reason). */
  cancel(): void {
    if (!this.verdict) {
      this.verdict = { ok: true };
      void this.worker.terminate();
    }
  }
}

const ringCode = (ranges: boolean) => `
const { workerData } = require('node:worker_threads');
${ranges ? "const fs = require('node:fs');" : ''}
${CRC32_AT_CODE}
const { bufs, ctl, port, CHUNK } = workerData;
// ctl: [0] stop, [1] unused, [2] result ready (posted on port first), then per slot: state
// (1: full), length, and (ranges of a file) the range's offset's low and high 32 bits.
const c = new Int32Array(ctl);
const SLOT = ${SLOT_INTS};
const views = ${ranges ? 'null' : 'bufs.map((b) => Buffer.from(b))'};
const slots = ${ranges ? 'workerData.slots' : 'views.length'};
${ranges ? 'const fd = workerData.fd, piece = Buffer.allocUnsafe(workerData.piece);' : ''}
const hex = (x) => (x >>> 0).toString(16).padStart(8, '0');
// One CRC-32 per CHUNK bytes, as StreamSum (image-sums.ts) makes them.
let crc = 0, size = 0;
const chunks = [];
function sum(b) {
  for (let at = 0; at < b.length; ) {
    const k = Math.min(CHUNK - (size % CHUNK), b.length - at);
    crc = crc32(b.subarray(at, at + k), crc);
    size += k;
    at += k;
    if (size % CHUNK === 0) { chunks.push(hex(crc)); crc = 0; }
  }
}
(function run() {
for (let i = 0; ; i = (i + 1) % slots) {
  const st = 3 + i * SLOT;
  while (Atomics.load(c, st) !== 1) {
    if (Atomics.load(c, 0) === 1 && Atomics.load(c, st) !== 1) {
      port.postMessage(chunks.join('') + (size % CHUNK ? hex(crc) : ''));
      Atomics.store(c, 2, 1);
      Atomics.notify(c, 2);
      return;
    }
    Atomics.wait(c, st, 0, 50);
  }
  const len = Atomics.load(c, st + 1);
  ${ranges ? `// Read back in pieces the caches hold, each summed while it is there.
  const from = Number((BigInt(Atomics.load(c, st + 3) >>> 0) << 32n) | BigInt(Atomics.load(c, st + 2) >>> 0));
  for (let got = 0; got < len; ) {
    const n = fs.readSync(fd, piece, 0, Math.min(piece.length, len - got), from + got);
    if (n <= 0) throw new Error('the pages file ended at ' + (from + got) + ', before the ' + len + ' bytes written from ' + from);
    sum(piece.subarray(0, n));
    got += n;
  }` : 'sum(views[i].subarray(0, len));'}
  Atomics.store(c, st, 0);
  Atomics.notify(c, st);
}
})();
`;
const SLOT_INTS = 4;
/** How much of a range the summing thread reads back at a time: what its caches hold. */
const RANGE_PIECE = 1 << 20;

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
 * released before, so summing no longer sits in series with copying (issue 15). Made with
 * `{ fd, ranges: N }`, the ring has no buffers: the writer hands over ranges of the file `fd`
 * that something else wrote (the task's own pwritev), which the thread reads back (pread, a
 * MiB at a time) and sums. It read them through windows of the file this thread mapped
 * (MAP_POPULATE) before: setting up and tearing down the page tables of each page cost this
 * thread about 150 ms per GiB, on the core the summing thread shares with it while the task
 * copies on the other, and slowed the task's own writes (the page cache's LRU lock).
 */
export class RingSum {
  private readonly worker: Worker;
  private readonly ctl: Int32Array;
  private readonly bufs: Buffer[];
  private readonly slots: number;
  private next = 0;
  private size = 0;
  private result: FileSum | undefined;
  private readonly port: MessagePort;

  constructor(slots: number | { fd: number; ranges: number }, slotBytes = 0) {
    const ranges = typeof slots !== 'number';
    this.slots = ranges ? slots.ranges : slots;
    const sabs = ranges ? [] : Array.from({ length: this.slots }, () => new SharedArrayBuffer(slotBytes));
    this.bufs = sabs.map((s) => Buffer.from(s));
    this.ctl = new Int32Array(new SharedArrayBuffer(4 * (3 + this.slots * SLOT_INTS)));
    const { port1, port2 } = new (threads().MessageChannel)();
    this.port = port1;
    this.worker = new (threads().Worker)(ringCode(ranges), {
      eval: true,
      workerData: { bufs: sabs, slots: this.slots, fd: ranges ? slots.fd : -1, piece: RANGE_PIECE, ...crcWorkerData(), ctl: this.ctl.buffer, port: port2, CHUNK: SUM_CHUNK },
      transferList: [port2],
      ...QUIET,
    });
    this.worker.unref();
    this.port.unref();
  }

  /** The next buffer to fill, once the thread has summed what it held. */
  acquire(): Buffer {
    waitWhile(this.ctl, 3 + this.next * SLOT_INTS, 1);
    return this.bufs[this.next]!;
  }

  /** The buffer acquire() gave holds `len` bytes, written to the file: to be summed. */
  release(len: number): void {
    this.hand(len);
  }

  /** The file's next `len` bytes, at `pos`, written: to be read back and summed (once a slot is free). */
  releaseRange(pos: bigint, len: number): void {
    const st = 3 + this.next * SLOT_INTS;
    waitWhile(this.ctl, st, 1);
    this.ctl[st + 2] = Number(pos & 0xffffffffn) | 0;
    this.ctl[st + 3] = Number(pos >> 32n) | 0;
    this.hand(len);
  }

  private hand(len: number): void {
    const st = 3 + this.next * SLOT_INTS;
    Atomics.store(this.ctl, st + 1, len);
    Atomics.store(this.ctl, st, 1);
    Atomics.notify(this.ctl, st);
    this.size += len;
    this.next = (this.next + 1) % this.slots;
  }

  /** Waits for the thread to sum every released buffer: size and CRC-32s per chunk, as StreamSum gives them. */
  finish(): FileSum {
    if (!this.result) {
      Atomics.store(this.ctl, 0, 1);
      for (let i = 0; i < this.slots; i++) Atomics.notify(this.ctl, 3 + i * SLOT_INTS);
      waitWhile(this.ctl, 2, 0);
      const chunks = threads().receiveMessageOnPort(this.port)?.message;
      if (typeof chunks !== 'string') throw new StasisError('E_INTERNAL', 'The thread summing the pages written gave no sums');
      this.result = { size: this.size, chunks };
      void this.worker.terminate();
      this.port.close();
    }
    return this.result;
  }
}
