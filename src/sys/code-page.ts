// A page of machine code of this process's own, for the few things only an instruction or a
// clone made from our own thread can do (cpuid.ts, spawn-sibling.ts): mapped writable, filled
// through /proc/self/mem, then made read-only and executable, and called through koffi.
import fs from 'node:fs';
import { libc } from './koffi-addon.js';
import { syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

type AsPointer = (d: bigint, s: bigint, n: number) => unknown;
let asPointer: AsPointer = (d, s, n) => {
  asPointer = libc().func('void *memmove(uint64 dst, uint64 src, size_t n)') as AsPointer;
  return asPointer(d, s, n);
};

/** Maps `code` into an executable page of its own; the page's address and a pointer koffi can call. */
export function codePage(code: Buffer, what: string): { addr: bigint; fn: unknown } {
  const addr = syscallRaw('mmap', 0, 4096, 1 | 2, 0x22, -1, 0);
  if (addr < 0n) throw new SyscallError('mmap', Number(-addr), `a page of code for ${what}`);
  const mem = fs.openSync('/proc/self/mem', 'r+');
  try {
    fs.writeSync(mem, code, 0, code.length, Number(addr));
  } finally {
    fs.closeSync(mem);
  }
  const r = syscallRaw('mprotect', addr, 4096, 1 | 4);
  if (r < 0n) throw new SyscallError('mprotect', Number(-r), `the page of code for ${what}`);
  return { addr: BigInt.asUintN(64, addr), fn: asPointer(addr, addr, 0) };
}
