// Windows of a file mapped shared into stasis, where its bytes are read in place: a restore's
// check sums big image files through such windows of the page cache (image-sums.ts), with no
// copy of their own. MAP_POPULATE maps the window's pages in one call rather than one fault
// per 4 KiB.
import fs from 'node:fs';
import { syscall } from './libc.js';
import { koffi } from './koffi-addon.js';

const PROT_READ = 1, MAP_SHARED = 1, MAP_POPULATE = 0x8000;
const SEEK_SET = 0;

export function seekTo(fd: number, off: bigint): void {
  syscall('lseek', fd, off, SEEK_SET);
}

/** Maps `len` bytes of `fd` at `off` (page-aligned) read-only, shared and populated; returns its address. */
function mapWindow(fd: number, off: bigint, len: number): bigint {
  return syscall('mmap', 0, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, off);
}

function unmapWindow(addr: bigint, len: number): void {
  syscall('munmap', addr, len);
}

/** A Buffer over `len` bytes of stasis's memory at `addr` (a window mapped here), valid until it is unmapped. */
function bufferAt(addr: bigint, len: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(addr, 0);
  return Buffer.from(koffi().view(koffi().decode(p, 'void *'), len));
}

/**
 * Calls `each` with the bytes of the file open at `fd` (`size` of them, from its start) in
 * order, a mapped window of at most `window` bytes at a time, read in place from the page
 * cache: no copy into a buffer of stasis's first. Each Buffer is valid only during its call.
 */
export function eachWindow(fd: number, size: number, each: (b: Buffer) => void, window = 8 << 20): void {
  for (let off = 0; off < size; off += window) withWindow(fd, off, Math.min(window, size - off), each);
}

/** Calls `fn` with `len` bytes of the file open at `fd` from `off` (page-aligned), mapped in place as eachWindow() maps them. */
export function withWindow(fd: number, off: number, len: number, fn: (b: Buffer) => void): void {
  const addr = mapWindow(fd, BigInt(off), len);
  try {
    fn(bufferAt(addr, len));
  } finally {
    unmapWindow(addr, len);
  }
}

/** The size of the file open at `fd`. */
export const fdSize = (fd: number): number => fs.fstatSync(fd).size;
