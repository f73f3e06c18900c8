// The test's end of a pipe a workload writes lines to: read in the background or when asked,
// until end of file; and the check that a counter's lines came each once, in order.
import assert from 'node:assert/strict';
import { pipe2, closeFd, readRaw } from '../../../src/sys/index.js';

const O_CLOEXEC = 0o2000000, O_NONBLOCK = 0o4000;

/** The read end of a pipe, drained in the background (so the writer never blocks) or only when asked. */
export class Reader {
  text = '';
  eof = false;
  private timer: NodeJS.Timeout | undefined;
  constructor(readonly fd: number) {}
  drain(): void {
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = readRaw(this.fd, buf, 0, buf.length);
      if (n === 0) this.eof = true;
      if (n <= 0) return;
      this.text += buf.toString('latin1', 0, n);
    }
  }
  start(): void {
    this.timer ??= setInterval(() => this.drain(), 2);
  }
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
  async untilEof(timeoutMs = 20000): Promise<string> {
    const until = Date.now() + timeoutMs;
    while (!this.eof) {
      this.drain();
      if (Date.now() > until) throw new Error(`no end of file on fd ${this.fd} after ${timeoutMs} ms; read ${JSON.stringify(this.text.slice(-80))}`);
      await new Promise((ok) => setTimeout(ok, 2));
    }
    this.stop();
    closeFd(this.fd);
    return this.text;
  }
}

/** A pipe: the test's read end (non-blocking) and the write end to hand over. */
export function newPipe(): { reader: Reader; write: number } {
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  return { reader: new Reader(r), write: w };
}

/** The lines are 0, 1, 2, ... up to `n`, each once. */
export function assertCounts(text: string, n: number): void {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'the output ends in the middle of a line');
  const bad = lines.findIndex((l, i) => l !== String(i));
  assert.equal(bad, -1, `line ${bad} is ${JSON.stringify(lines[bad])} (around it: ${JSON.stringify(lines.slice(Math.max(0, bad - 2), bad + 3))})`);
  assert.equal(lines.length, n + 1, `${lines.length} lines, want ${n + 1}`);
}

export const finalCount = (result: string) => Number(/n=(\d+)/.exec(result)?.[1]);

