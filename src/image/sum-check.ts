// The CRC-32s of big pages files checked on the other core while restore builds the tree:
// restore's address-space fill is the tasks' own preadv (the kernel copies), so stasis's
// thread mostly waits meanwhile, and the ~0.3 s/GiB of summing is no longer in series
// with it. restore() waits for the verdict before any task of the tree runs (issue 15).
// The worker only reads files; it is eval'd code with Node's built-ins alone, so it needs no
// path of its own inside the CLI bundle.
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { StasisError } from '../errors.js';
import type { DeferredSum } from './image-sums.js';

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
  private readonly done = new Int32Array(new SharedArrayBuffer(4));
  private verdict: Verdict | undefined;

  constructor(private readonly files: DeferredSum[]) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(CODE, { eval: true, workerData: { files, port: port2, done: this.done.buffer }, transferList: [port2] });
    // Never what keeps the process alive: a failed restore that forgot it must still exit.
    this.worker.unref();
    this.port.unref();
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

  /** Stops the check (a restore that failed for another reason). */
  cancel(): void {
    if (!this.verdict) {
      this.verdict = { ok: true };
      void this.worker.terminate();
    }
  }
}
