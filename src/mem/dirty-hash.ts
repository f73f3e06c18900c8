// The content-hash backend, for kernels with neither userfaultfd write-protection nor a
// working soft-dirty: every page a dump writes is hashed and the hashes kept in the image
// dir; the next dump reads every page again, and a page whose hash matches the parent's at
// the same address goes to the image as in_parent. It saves image size, not downtime (all
// memory is still read while the task is frozen), and it is right whatever the task did in
// between (unmap, remap, exec): only contents are compared. Needs nothing alive between runs.
//
// The hash is two independent 32-bit multiply-xorshift lanes over the page's words (64 bits):
// in JavaScript it runs at ~0.8 GB/s, as fast as node:crypto's per-page digests, and a
// changed page goes unseen with odds of about 2^-64. Not a defence against a task that
// crafts collisions on purpose.
import fs from 'node:fs';
import path from 'node:path';
import { StasisError } from '../errors.js';
import type { DirtyInfo, DirtyTracker, TaskTrack, TrackedTask } from './dirty.js';
import { writePrivateFile } from '../image/image-modes.js';

const MAGIC = 0x48534154; // "TASH"

/** The hash file of task `pid` in an image dir. */
export function hashFileName(pid: number): string {
  return `stasis-hashes-${pid}.bin`;
}
const PAGE_WORDS = 1024;

/** The 64-bit hash of the page at buf[off..off+4096], as two 32-bit halves. */
export function hashPage(buf: Buffer, off: number, out: Uint32Array, at: number): void {
  const w = new Int32Array(buf.buffer, buf.byteOffset + off, PAGE_WORDS);
  let h1 = 0x243f6a88 | 0, h2 = 0x85a308d3 | 0;
  for (let i = 0; i < PAGE_WORDS; i += 2) {
    const a = w[i]!, c = w[i + 1]!;
    h1 = (Math.imul(h1 ^ a, 0x9e3779b1) + c) | 0;
    h2 = (Math.imul(h2 ^ c, 0x85ebca77) + a) | 0;
    h1 ^= h1 >>> 15;
    h2 ^= h2 >>> 13;
  }
  out[at] = h1 >>> 0;
  out[at + 1] = h2 >>> 0;
}

/** Page hashes by page number, sorted; looked up in increasing order through a cursor. */
export class PageHashes {
  private i = 0;
  constructor(readonly pages: Float64Array, readonly hashes: Uint32Array) {}

  /** Whether page `pageNo` was recorded with the hash in h[at], h[at+1]. */
  same(pageNo: number, h: Uint32Array, at: number): boolean {
    const p = this.pages;
    if (this.i > 0 && p[this.i - 1]! >= pageNo) this.i = 0; // queries went back: start over
    while (this.i < p.length && p[this.i]! < pageNo) this.i++;
    if (this.i >= p.length || p[this.i] !== pageNo) return false;
    return this.hashes[2 * this.i] === h[at] && this.hashes[2 * this.i + 1] === h[at + 1];
  }

  static read(file: string): PageHashes {
    const b = fs.readFileSync(file);
    const n = b.length >= 8 ? b.readUInt32LE(4) : -1;
    if (b.length < 8 || b.readUInt32LE(0) !== MAGIC || b.length !== 8 + n * 16) {
      throw new StasisError('E_CORRUPT', `${file} is not a page hash file of stasis (${b.length} bytes)`);
    }
    const pages = new Float64Array(n), hashes = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) {
      pages[i] = b.readDoubleLE(8 + i * 8);
      hashes[2 * i] = b.readUInt32LE(8 + n * 8 + i * 8);
      hashes[2 * i + 1] = b.readUInt32LE(8 + n * 8 + i * 8 + 4);
    }
    return new PageHashes(pages, hashes);
  }
}

/** Collects the hash of every page a dump reads (hashed once, by the page dumper), in address order. */
class HashRecorder {
  private pages = new Float64Array(1 << 14);
  private hashes = new Uint32Array(2 << 14);
  count = 0;

  /** Page `pageNo`, whose hash is hash[at] and hash[at + 1]. */
  add(pageNo: number, hash: Uint32Array, at: number): void {
    if (this.count === this.pages.length) {
      const p = new Float64Array(this.pages.length * 2), h = new Uint32Array(this.hashes.length * 2);
      p.set(this.pages);
      h.set(this.hashes);
      this.pages = p;
      this.hashes = h;
    }
    this.pages[this.count] = pageNo;
    this.hashes[2 * this.count] = hash[at]!;
    this.hashes[2 * this.count + 1] = hash[at + 1]!;
    this.count++;
  }

  write(file: string): void {
    const n = this.count;
    const b = Buffer.alloc(8 + n * 16);
    b.writeUInt32LE(MAGIC, 0);
    b.writeUInt32LE(n, 4);
    for (let i = 0; i < n; i++) {
      b.writeDoubleLE(this.pages[i]!, 8 + i * 8);
      b.writeUInt32LE(this.hashes[2 * i]!, 8 + n * 8 + i * 8);
      b.writeUInt32LE(this.hashes[2 * i + 1]!, 8 + n * 8 + i * 8 + 4);
    }
    writePrivateFile(file, b);
  }
}

export class HashTracker implements DirtyTracker {
  readonly backend = 'hash' as const;
  private recorder: HashRecorder | null = null;
  onPage: ((pageNo: number, hash: Uint32Array, at: number) => void) | undefined;

  /** `parentFile`: the parent's hash file, when there is one. */
  constructor(private readonly pid: number, private readonly start: string, private readonly parentFile: string | null) {}

  changes(_task: TrackedTask): DirtyInfo {
    if (!this.parentFile || !fs.existsSync(this.parentFile)) return { written: null };
    return { written: null, hashes: PageHashes.read(this.parentFile) };
  }

  arm(): void {
    const r = new HashRecorder();
    this.recorder = r;
    this.onPage = (p, b, o) => r.add(p, b, o);
  }

  commit(dir: string): TaskTrack {
    if (!this.recorder) throw new StasisError('E_DUMP_FAILED', `Hash tracking of pid ${this.pid} was not armed`);
    const name = hashFileName(this.pid);
    this.recorder.write(path.join(dir, name));
    return { pid: this.pid, start: this.start, backend: 'hash', hashes: name };
  }

  stop(): void {
    this.recorder = null;
  }

  release(): void {
    this.recorder = null;
  }
}
