// Images that know when they are damaged: `stasis-sums.json` holds the size and CRC-32 of
// every file a dump wrote (image files and pages files alike), and restore checks them, and
// those of every parent set its pages come from, before it creates anything. CRIU and crit
// skip files they do not know, and no CRIU image is named so. The dirty-tracking state
// (`stasis-track.json`, `stasis-hashes-*.bin`) is not covered: a later dump rewrites it, and
// restore never reads it. Changing this file's shape changes the image format (format.ts).
//
// Version 2 holds CRC-32s (zlib's, computed with PCLMULQDQ: ~12 GB/s here, crc32-code.ts),
// version 1 SHA-256s (1.1 GB/s: 0.9 s of a 1 GiB dump, and as much again before its
// restore); both are checked. Version 3 adds, for
// the pages files a dump sums as it writes them, a CRC-32 per MiB (`chunks`, in place of the
// file's): restore --lazy-pages checks each MiB before it puts a page of it in a task, so
// no task runs on a byte that was not checked. The sums catch
// damage (a torn write, a bad disk, a truncated copy), not a forger: whoever can write the
// images can write their sums.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { crc32 } from '../sys/crc32-code.js';
import { eachWindow, fdSize, withWindow } from '../sys/file-window.js';
import { StasisError } from '../errors.js';
import { writeFileAtomic } from './image-file.js';
import { SUM_CHUNK, sumMismatch } from './sum-compare.js';

export const SUMS_FILE = 'stasis-sums.json';
const SUMS_VERSION = 3;
const READS = [1, 2, 3];
export { SUM_CHUNK, sumMismatch } from './sum-compare.js';
const MAX_SUMS_BYTES = 16 << 20;
const MAX_CHAIN = 256;
const CHUNK = 4 << 20;
/** From this size on a file is summed through mapped windows of the page cache rather than read into a buffer (16 MiB: 6 ms of copying less per restore here). */
const MAPPED = 1 << 20;
// node:crypto only for version 1 sets: loading it (and the streams it brings) costs every command a few ms.
const sha256 = () => (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).createHash('sha256');

export interface FileSum {
  size: number;
  /** Versions 2 and 3: zlib's CRC-32, 8 hex digits. */
  crc32?: string;
  /** Version 3, in place of crc32: the CRC-32 of each SUM_CHUNK bytes in turn, 8 hex digits each. */
  chunks?: string;
  /** Version 1. */
  sha256?: string;
}

export interface SumsFile {
  'stasis-sums': number;
  /** Version 3: SUM_CHUNK. */
  'chunk-bytes'?: number;
  files: Record<string, FileSum>;
}

const hex8 = (crc: number) => (crc >>> 0).toString(16).padStart(8, '0');

/** Size and CRC-32 (or, for a version 1 set, SHA-256) of a file, read in chunks through one reused buffer. */
export function sumFile(file: string, buf: Buffer = Buffer.allocUnsafe(CHUNK), algo: 'crc32' | 'sha256' = 'crc32'): FileSum {
  const fd = fs.openSync(file, 'r');
  try {
    const h = algo === 'sha256' ? sha256() : null;
    let size = 0, crc = 0;
    const whole = h ? 0 : fdSize(fd);
    if (whole >= MAPPED) {
      eachWindow(fd, whole, (b) => {
        crc = crc32(b, crc);
        size += b.length;
      });
      return { size, crc32: hex8(crc) };
    }
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, size);
      if (n === 0) break;
      if (h) h.update(buf.subarray(0, n));
      else crc = crc32(buf.subarray(0, n), crc);
      size += n;
    }
    return h ? { size, sha256: h.digest('hex') } : { size, crc32: hex8(crc) };
  } finally {
    fs.closeSync(fd);
  }
}

/** The CRC-32 of each SUM_CHUNK of `file`, as `chunks` holds them, read through `buf`. */
export function sumChunks(file: string, buf: Buffer = Buffer.allocUnsafe(CHUNK)): FileSum {
  const fd = fs.openSync(file, 'r');
  try {
    const s = new StreamSum();
    const whole = fdSize(fd);
    if (whole >= MAPPED) {
      eachWindow(fd, whole, (b) => s.add(b));
      return s.sum;
    }
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, s.bytes);
      if (n === 0) break;
      s.add(buf.subarray(0, n));
    }
    return s.sum;
  } finally {
    fs.closeSync(fd);
  }
}

/** Running CRC-32s, one per SUM_CHUNK, of bytes written in order from a file's start: its sum without reading it again. */
export class StreamSum {
  private crc = 0;
  private size = 0;
  private readonly done: string[] = [];
  get bytes(): number {
    return this.size;
  }
  add(b: Uint8Array): void {
    for (let at = 0; at < b.length; ) {
      const n = Math.min(SUM_CHUNK - (this.size % SUM_CHUNK), b.length - at);
      this.crc = crc32(b.subarray(at, at + n), this.crc);
      this.size += n;
      at += n;
      if (this.size % SUM_CHUNK === 0) {
        this.done.push(hex8(this.crc));
        this.crc = 0;
      }
    }
  }
  get sum(): FileSum {
    return { size: this.size, chunks: this.done.join('') + (this.size % SUM_CHUNK ? hex8(this.crc) : '') };
  }
}


/**
 * Writes the sums of `files` (paths inside `dir`); the last file a dump writes. `known`: the
 * sums of files summed as they were written (pages files), not read again.
 */
export function writeSums(dir: string, files: string[], known: ReadonlyMap<string, FileSum> = new Map()): string {
  const buf = Buffer.allocUnsafe(CHUNK);
  const sums: Record<string, FileSum> = {};
  for (const f of [...new Set(files)].sort()) {
    const name = path.relative(dir, f);
    if (name.includes('/') || name.startsWith('..')) {
      throw new StasisError('E_INTERNAL', `Cannot checksum ${f}: it is not a file of ${dir}`);
    }
    sums[name] = known.get(f) ?? sumFile(f, buf);
  }
  const file = path.join(dir, SUMS_FILE);
  writeFileAtomic(file, Buffer.from(`${JSON.stringify({ 'stasis-sums': SUMS_VERSION, 'chunk-bytes': SUM_CHUNK, files: sums } satisfies SumsFile, null, 1)}\n`));
  return file;
}

export function hasSums(dir: string): boolean {
  return fs.existsSync(path.join(dir, SUMS_FILE));
}

function readSums(dir: string): SumsFile {
  const file = path.join(dir, SUMS_FILE);
  const size = fs.statSync(file).size;
  if (size > MAX_SUMS_BYTES) throw new StasisError('E_CORRUPT', `${file} is ${size} bytes, more than a sums file can be`);
  let j: unknown;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new StasisError('E_CORRUPT', `${file} is damaged: ${(e as Error).message}`);
  }
  const s = j as Partial<SumsFile> | null;
  const version = s?.['stasis-sums'];
  if (typeof s !== 'object' || s === null || !READS.includes(version as number) || typeof s.files !== 'object' || s.files === null) {
    throw new StasisError('E_CORRUPT', `${file} is damaged: not a stasis sums file of version ${READS.join(' or ')}`);
  }
  if (version === 3 && s['chunk-bytes'] !== SUM_CHUNK) {
    throw new StasisError('E_CORRUPT', `${file} is damaged: its chunk-bytes is ${JSON.stringify(s['chunk-bytes'])}, not ${SUM_CHUNK}`);
  }
  const [key, form, what] = version === 1 ? ['sha256', /^[0-9a-f]{64}$/, 'SHA-256'] as const : ['crc32', /^[0-9a-f]{8}$/, 'CRC-32'] as const;
  for (const [name, v] of Object.entries(s.files)) {
    const sized = typeof v === 'object' && v !== null && Number.isSafeInteger(v.size) && v.size >= 0;
    // A version 3 entry has the file's CRC-32 or one per chunk, as many as its size has chunks.
    const chunked = version === 3 && sized && typeof v.chunks === 'string' && v.crc32 === undefined &&
      /^(?:[0-9a-f]{8})*$/.test(v.chunks) && v.chunks.length === Math.ceil(v.size / SUM_CHUNK) * 8;
    const ok = sized && (chunked || (typeof v[key] === 'string' && form.test(v[key]) && v.chunks === undefined)) &&
      name !== '' && !/[/\0]/.test(name) && name !== '.' && name !== '..';
    if (!ok) throw new StasisError('E_CORRUPT', `${file} is damaged: its entry for ${JSON.stringify(name)} is not a size and a ${what}${version === 3 ? ' or CRC-32s per chunk' : ''}`);
  }
  return s as SumsFile;
}

/** A file whose size is not the one written with it: E_TRUNCATED when shorter, else E_CORRUPT. */
export function sizeDamaged(file: string, size: number, written: number): StasisError {
  return new StasisError(size < written ? 'E_TRUNCATED' : 'E_CORRUPT', `${file} is damaged: it holds ${size} bytes, ${written} were written`);
}

/** A CRC-32 (or one per chunk) left to be checked later, on another thread (sum-check.ts) or by restore --lazy-pages's filler. */
export interface DeferredSum {
  file: string;
  size: number;
  crc32?: string;
  chunks?: string;
}

/**
 * Checks every file `dir`'s sums file lists; throws E_CORRUPT (or E_TRUNCATED, E_NO_IMAGE)
 * naming the first that differs. Files `defer` picks (of a CRC-32 set, size already checked)
 * are summed later: they go into `deferred`.
 */
export function verifySums(dir: string, defer?: (name: string, size: number) => boolean, deferred: DeferredSum[] = []): number {
  const sums = readSums(dir);
  const buf = Buffer.allocUnsafe(CHUNK);
  let n = 0;
  const sha = sums['stasis-sums'] === 1;
  for (const [name, want] of Object.entries(sums.files)) {
    const file = path.join(dir, name);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new StasisError('E_NO_IMAGE', `${file} is missing: ${SUMS_FILE} lists it`);
    if (st.size !== want.size) throw sizeDamaged(file, st.size, want.size);
    if (!sha && defer?.(name, st.size)) {
      deferred.push({ file, size: want.size, ...(want.chunks !== undefined ? { chunks: want.chunks } : { crc32: want.crc32! }) });
      n++;
      continue;
    }
    if (sha) {
      if (sumFile(file, buf, 'sha256').sha256 !== want.sha256) throw new StasisError('E_CORRUPT', `${file} is damaged: its SHA-256 differs from the one written with it`);
    } else {
      const bad = sumMismatch(want, want.chunks !== undefined ? sumChunks(file, buf) : sumFile(file, buf));
      if (bad) throw new StasisError('E_CORRUPT', `${file} is damaged: ${bad}`);
    }
    n++;
  }
  return n;
}

/**
 * Deferred sums checked a window at a time, by restore's own thread while a task's injected
 * call runs (its preadv of its pages: the kernel's copy on the task's core, restore's thread
 * idle meanwhile, issue 15). step() sums the next window and throws E_CORRUPT at the end of a
 * file whose CRC-32s differ; finish() does what is left, before the tree may run.
 */
export class SumsAlongside {
  private fd = -1;
  private at = 0;
  private crc = 0;
  private chunked: StreamSum | null = null;
  private readonly left: DeferredSum[];
  constructor(files: DeferredSum[], private readonly window = 2 << 20) {
    this.left = [...files];
  }
  get pending(): number {
    return this.left.length;
  }
  /** Sums one window; false once every file is checked. */
  step(): boolean {
    const f = this.left[0];
    if (!f) return false;
    if (this.fd < 0) {
      this.fd = fs.openSync(f.file, 'r');
      // (Mapped past its end a window would fault stasis: a file cut since its size was checked is refused.)
      const size = fdSize(this.fd);
      if (size !== f.size) {
        this.close();
        this.left.length = 0;
        throw sizeDamaged(f.file, size, f.size);
      }
      this.at = 0;
      this.crc = 0;
      this.chunked = f.chunks !== undefined ? new StreamSum() : null;
    }
    const len = Math.min(this.window, f.size - this.at);
    if (len > 0) {
      withWindow(this.fd, this.at, len, (b) => {
        if (this.chunked) this.chunked.add(b);
        else this.crc = crc32(b, this.crc);
      });
      this.at += len;
    }
    if (this.at < f.size) return true;
    this.close();
    this.left.shift();
    const got = this.chunked ? this.chunked.sum : { size: f.size, crc32: hex8(this.crc) };
    const bad = sumMismatch(f, got);
    if (bad) {
      this.left.length = 0;
      throw new StasisError('E_CORRUPT', `${f.file} is damaged: ${bad}`);
    }
    return this.left.length > 0;
  }
  finish(): void {
    while (this.step());
  }
  /** Stops (a restore that failed for another reason). */
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * Checks `dir` and every parent set its `parent` links lead to. A set without sums is
 * accepted only where `requireSums` says its format predates them (CRIU's, older stasis).
 */
export function verifyImageChain(
  dir: string, requireSums: (dir: string) => boolean, defer?: (name: string, size: number) => boolean,
): { dirs: number; files: number; deferred: DeferredSum[] } {
  const seen = new Set<string>();
  const deferred: DeferredSum[] = [];
  let files = 0, dirs = 0;
  for (let d = dir; ; d = path.join(d, 'parent')) {
    const real = fs.realpathSync(d);
    if (seen.has(real)) throw new StasisError('E_CORRUPT', `The parent links of ${dir} form a loop`);
    if (seen.size >= MAX_CHAIN) throw new StasisError('E_CORRUPT', `${dir} is more than ${MAX_CHAIN} parent links deep`);
    seen.add(real);
    if (hasSums(d)) files += verifySums(d, defer, deferred);
    else if (requireSums(d)) throw new StasisError('E_CORRUPT', `${d} has no ${SUMS_FILE}: the dump did not finish, or the file was lost`);
    dirs++;
    if (!fs.existsSync(path.join(d, 'parent'))) return { dirs, files, deferred };
  }
}
