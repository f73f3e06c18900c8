// The only I/O in src/proc: reading the files the parsers take. readFileSync reads until
// EOF, which seq_file-backed /proc files need (their st_size is 0); the parsers stay pure.
import fs from 'node:fs';
import { StasisError } from '../errors.js';

/** A pid, a tid reached as `task/TID/...` in `name`, or the caller itself. */
export type ProcPid = number | 'self' | 'thread-self';

export function procPath(pid: ProcPid, name: string): string {
  return `/proc/${pid}/${name}`;
}

/** Reads /proc/PID/NAME as UTF-8 text (`maps`, `task/12/stat`, `fdinfo/3`). */
export function readProcText(pid: ProcPid, name: string): string {
  return fs.readFileSync(procPath(pid, name), 'utf8');
}

/** Like readProcText, but null when the task or the file is gone (ENOENT, ESRCH). */
export function readProcTextOrNull(pid: ProcPid, name: string): string | null {
  try {
    return readProcText(pid, name);
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/** Reads a binary /proc file whole (`auxv`); never `pagemap`, which spans the address space. */
export function readProcBuffer(pid: ProcPid, name: string): Buffer {
  return fs.readFileSync(procPath(pid, name));
}

/**
 * Reads the pagemap entries of `nrPages` pages from `firstVaddr` out of an open
 * /proc/PID/pagemap into `into` (allocated when not given). Positions go to fs as Numbers:
 * the largest, for the top of a 57-bit address space, is 2^48, well inside 2^53.
 */
export function readPagemap(fd: number, firstVaddr: bigint, nrPages: number, pageSize: number, into?: Buffer): Buffer {
  const len = nrPages * 8;
  const buf = into ?? Buffer.alloc(len);
  if (buf.length < len) throw new RangeError(`A buffer of ${buf.length} bytes cannot hold ${nrPages} pagemap entries`);
  const position = Number(firstVaddr / BigInt(pageSize)) * 8;
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, position + got);
    if (n === 0) throw new StasisError('E_DUMP_FAILED', `Short read of pagemap at 0x${firstVaddr.toString(16)}: ${got} of ${len} bytes`);
    got += n;
  }
  return buf.subarray(0, len);
}

function isGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}
