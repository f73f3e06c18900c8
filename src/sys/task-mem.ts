// Reading and writing another task's memory. process_vm_readv is fastest (one copy, no
// page-table walk through /proc); /proc/PID/mem reaches pages the task cannot read itself
// (PROT_NONE, write-only) and writes through read-only mappings (FOLL_FORCE).
import fs from 'node:fs';
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

/** Reads len bytes at addr into buf[off..]; returns the bytes read (short on a fault). */
export function vmRead(pid: number, addr: bigint, buf: Buffer, off: number, len: number): number {
  const iov = Buffer.alloc(32);
  iov.writeBigUInt64LE(addressOf(buf) + BigInt(off), 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  iov.writeBigUInt64LE(addr, 16);
  iov.writeBigUInt64LE(BigInt(len), 24);
  const r = syscallRaw('process_vm_readv', pid, addressOf(iov), 1, addressOf(iov) + 16n, 1, 0);
  keepAlive(iov, buf);
  if (r < 0n) {
    if (r === -14n) return 0; // EFAULT: nothing readable at addr
    throw new SyscallError('process_vm_readv', Number(-r), `pid ${pid}`);
  }
  return Number(r);
}

/** A /proc/PID/mem handle: positions go to fs as Numbers (Node 20 rejects BigInt here). */
export class ProcMem {
  readonly fd: number;
  constructor(readonly pid: number, writable = false) {
    this.fd = fs.openSync(`/proc/${pid}/mem`, writable ? 'r+' : 'r');
  }
  read(addr: bigint, buf: Buffer, off = 0, len = buf.length - off): number {
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, buf, off + done, len - done, Number(addr) + done);
      if (n <= 0) break;
      done += n;
    }
    return done;
  }
  readExact(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    const n = this.read(addr, b);
    if (n !== len) throw new SyscallError('pread(/proc/PID/mem)', 5, `pid ${this.pid} addr 0x${addr.toString(16)}`);
    return b;
  }
  write(addr: bigint, buf: Buffer, off = 0, len = buf.length - off): void {
    let done = 0;
    while (done < len) {
      const n = fs.writeSync(this.fd, buf, off + done, len - done, Number(addr) + done);
      if (n <= 0) throw new SyscallError('pwrite(/proc/PID/mem)', 5, `pid ${this.pid} addr 0x${addr.toString(16)}`);
      done += n;
    }
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

/**
 * Gathers `count` remote segments (an iovec array in `remote`) into buf[0..]; returns the
 * bytes read, which is short when a segment faults (then read the rest through ProcMem).
 */
export function vmReadv(pid: number, buf: Buffer, len: number, remote: Buffer, count: number): number {
  return vmCopy('process_vm_readv', pid, buf, len, remote, count);
}

/**
 * Writes buf[0..len) into the `count` segments of the iovec array `remote` (the task's
 * addresses); returns the bytes written, short where a segment is not writable.
 */
export function vmWritev(pid: number, buf: Buffer, len: number, remote: Buffer, count: number): number {
  return vmCopy('process_vm_writev', pid, buf, len, remote, count);
}

/** process_vm_readv or _writev between buf[0..len) and the remote segments; EFAULT at the first byte is 0 bytes. */
function vmCopy(call: 'process_vm_readv' | 'process_vm_writev', pid: number, buf: Buffer, len: number, remote: Buffer, count: number): number {
  const local = Buffer.alloc(16);
  local.writeBigUInt64LE(addressOf(buf), 0);
  local.writeBigUInt64LE(BigInt(len), 8);
  const r = syscallRaw(call, pid, addressOf(local), 1, addressOf(remote), count, 0);
  keepAlive(local, remote, buf);
  if (r < 0n) {
    if (r === -14n) return 0;
    throw new SyscallError(call, Number(-r), `pid ${pid}`);
  }
  return Number(r);
}
