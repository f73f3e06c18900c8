// userfaultfd write-protection in async mode and the PAGEMAP_SCAN ioctl: the kernel calls
// behind dirty-page tracking without soft-dirty. The structs are defined here from the
// kernel UAPI (include/uapi/linux/userfaultfd.h, include/uapi/linux/fs.h) because the
// distribution's headers are older than the kernels that have them.
import { addressOf, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const UFFD_USER_MODE_ONLY = 1;
const UFFD_API = 0xaan;
export const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n;
export const UFFD_FEATURE_WP_ASYNC = 1n << 15n;

const UFFDIO_API = 0xc018aa3fn; // _IOWR(0xAA, 0x3F, struct uffdio_api): 24 bytes
const UFFDIO_REGISTER = 0xc020aa00n; // _IOWR(0xAA, 0x00, struct uffdio_register): 32 bytes
const UFFDIO_UNREGISTER = 0x8010aa01n; // _IOR(0xAA, 0x01, struct uffdio_range): 16 bytes
const UFFDIO_WRITEPROTECT = 0xc018aa06n; // _IOWR(0xAA, 0x06, struct uffdio_writeprotect): 24 bytes
const UFFDIO_REGISTER_MODE_WP = 2n;
const UFFDIO_WRITEPROTECT_MODE_WP = 1n;

const PAGEMAP_SCAN = 0xc0606610n; // _IOWR('f', 16, struct pm_scan_arg): 96 bytes
export const PAGE_IS = {
  WPALLOWED: 1 << 0, WRITTEN: 1 << 1, FILE: 1 << 2, PRESENT: 1 << 3, SWAPPED: 1 << 4, PFNZERO: 1 << 5, HUGE: 1 << 6,
  SOFT_DIRTY: 1 << 7, GUARD: 1 << 8,
} as const;
export const PM_SCAN_WP_MATCHING = 1;
export const PM_SCAN_CHECK_WPASYNC = 2;

function ioctlBuf(fd: number, req: bigint, buf: Buffer, what: string): bigint {
  const r = syscallRaw('ioctl', fd, req, addressOf(buf));
  if (r < 0n) throw new SyscallError('ioctl', Number(-r), what);
  return r;
}

/** The UFFDIO_API handshake (once per uffd); returns the features the kernel granted. */
export function uffdApi(fd: number, features: bigint): bigint {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(UFFD_API, 0);
  b.writeBigUInt64LE(features, 8);
  ioctlBuf(fd, UFFDIO_API, b, `UFFDIO_API on fd ${fd}`);
  return b.readBigUInt64LE(8);
}

/** Registers [start, start+len) for write-protection; returns -errno instead of throwing. */
export function uffdRegisterWp(fd: number, start: bigint, len: bigint): number {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(UFFDIO_REGISTER_MODE_WP, 16);
  const r = syscallRaw('ioctl', fd, UFFDIO_REGISTER, addressOf(b));
  return r < 0n ? Number(r) : 0;
}

export function uffdUnregister(fd: number, start: bigint, len: bigint): number {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  const r = syscallRaw('ioctl', fd, UFFDIO_UNREGISTER, addressOf(b));
  return r < 0n ? Number(r) : 0;
}

/** Write-protects (or unprotects) a registered range. */
export function uffdWriteProtect(fd: number, start: bigint, len: bigint, protect = true): void {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0n, 16);
  ioctlBuf(fd, UFFDIO_WRITEPROTECT, b, `UFFDIO_WRITEPROTECT 0x${start.toString(16)}+0x${len.toString(16)} on fd ${fd}`);
}

export interface ScanQuery {
  flags: number;
  categoryMask: number;
  categoryInverted?: number;
  categoryAnyofMask?: number;
  returnMask: number;
}

export interface PageRegion {
  start: bigint;
  end: bigint;
  categories: number;
}

const VEC_LEN = 4096;

/**
 * PAGEMAP_SCAN over [start, end) of the task behind `pagemapFd` (/proc/PID/pagemap), to the
 * end: the kernel stops when the output vector is full and says where (walk_end).
 */
export function pagemapScan(pagemapFd: number, start: bigint, end: bigint, q: ScanQuery, onRegion: (r: PageRegion) => void): void {
  const arg = Buffer.alloc(96);
  const vec = Buffer.alloc(VEC_LEN * 24);
  const vecAddr = addressOf(vec);
  let from = start;
  while (from < end) {
    arg.fill(0);
    arg.writeBigUInt64LE(96n, 0);
    arg.writeBigUInt64LE(BigInt(q.flags), 8);
    arg.writeBigUInt64LE(from, 16);
    arg.writeBigUInt64LE(end, 24);
    arg.writeBigUInt64LE(vecAddr, 40);
    arg.writeBigUInt64LE(BigInt(VEC_LEN), 48);
    arg.writeBigUInt64LE(BigInt(q.categoryInverted ?? 0), 64);
    arg.writeBigUInt64LE(BigInt(q.categoryMask), 72);
    arg.writeBigUInt64LE(BigInt(q.categoryAnyofMask ?? 0), 80);
    arg.writeBigUInt64LE(BigInt(q.returnMask), 88);
    const n = Number(ioctlBuf(pagemapFd, PAGEMAP_SCAN, arg, `PAGEMAP_SCAN 0x${from.toString(16)}-0x${end.toString(16)}`));
    for (let i = 0; i < n; i++) {
      onRegion({ start: vec.readBigUInt64LE(i * 24), end: vec.readBigUInt64LE(i * 24 + 8), categories: Number(vec.readBigUInt64LE(i * 24 + 16)) });
    }
    // A vector not filled means the walk reached `end`. Only then is walk_end the place to go
    // on from: after an inner walk stopped on a full kernel buffer and a later one finished,
    // the kernel (6.18) leaves walk_end at the inner stop, and going on from there would
    // report regions twice.
    if (n < VEC_LEN) break;
    const walkEnd = arg.readBigUInt64LE(32);
    if (walkEnd <= from) break; // no progress: should not happen, but never loop forever
    from = walkEnd;
  }
}

// userfaultfd in MISSING mode, for restore --lazy-pages (mem/lazy-pages.ts): the area's
// first touch of each page waits for stasis to put it in with UFFDIO_COPY or ZEROPAGE.
export const UFFD_FEATURE_EVENT_FORK = 1n << 1n;
export const UFFD_FEATURE_EVENT_REMAP = 1n << 2n;
export const UFFD_FEATURE_EVENT_REMOVE = 1n << 3n;
export const UFFD_FEATURE_EVENT_UNMAP = 1n << 6n;
export const UFFD_EVENT = { PAGEFAULT: 0x12, FORK: 0x13, REMAP: 0x14, REMOVE: 0x15, UNMAP: 0x16 } as const;
/** sizeof(struct uffd_msg). */
export const UFFD_MSG_SIZE = 32;
const UFFDIO_REGISTER_MODE_MISSING = 1n;
const UFFDIO_COPY = 0xc028aa03n; // _IOWR(0xAA, 0x03, struct uffdio_copy): 40 bytes
const UFFDIO_ZEROPAGE = 0xc020aa04n; // _IOWR(0xAA, 0x04, struct uffdio_zeropage): 32 bytes
const _UFFDIO_COPY_BIT = 3n, _UFFDIO_ZEROPAGE_BIT = 4n;

/** Registers [start, start+len) in MISSING mode; -errno on failure, else 0 (and -EOPNOTSUPP where COPY or ZEROPAGE would not work there). */
export function uffdRegisterMissing(fd: number, start: bigint, len: bigint): number {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(UFFDIO_REGISTER_MODE_MISSING, 16);
  const r = syscallRaw('ioctl', fd, UFFDIO_REGISTER, addressOf(b));
  if (r < 0n) return Number(r);
  const ioctls = b.readBigUInt64LE(24);
  const need = (1n << _UFFDIO_COPY_BIT) | (1n << _UFFDIO_ZEROPAGE_BIT);
  return (ioctls & need) === need ? 0 : -95;
}

/** A reusable argument block for UFFDIO_COPY and UFFDIO_ZEROPAGE (one per filler: no allocation per call). */
export class UffdFill {
  private readonly copyArg = Buffer.alloc(40);
  private readonly zeroArg = Buffer.alloc(32);
  private readonly copyAddr = addressOf(this.copyArg);
  private readonly zeroAddr = addressOf(this.zeroArg);

  /**
   * UFFDIO_COPY of `len` bytes from `src` (an address in stasis) to `dst` in the uffd's mm:
   * the bytes copied (> 0), or -errno where none were (EEXIST: the first page is there already).
   */
  copy(fd: number, dst: bigint, src: bigint, len: number): number {
    const b = this.copyArg;
    b.writeBigUInt64LE(dst, 0);
    b.writeBigUInt64LE(src, 8);
    b.writeBigUInt64LE(BigInt(len), 16);
    b.writeBigUInt64LE(0n, 24);
    b.writeBigInt64LE(0n, 32);
    const r = syscallRaw('ioctl', fd, UFFDIO_COPY, this.copyAddr);
    const done = Number(b.readBigInt64LE(32));
    if (done > 0) return done;
    return r < 0n ? Number(r) : done < 0 ? done : -11;
  }

  /** UFFDIO_ZEROPAGE of `len` bytes at `dst`: bytes done, or -errno. */
  zero(fd: number, dst: bigint, len: number): number {
    const b = this.zeroArg;
    b.writeBigUInt64LE(dst, 0);
    b.writeBigUInt64LE(BigInt(len), 8);
    b.writeBigUInt64LE(0n, 16);
    b.writeBigInt64LE(0n, 24);
    const r = syscallRaw('ioctl', fd, UFFDIO_ZEROPAGE, this.zeroAddr);
    const done = Number(b.readBigInt64LE(24));
    if (done > 0) return done;
    return r < 0n ? Number(r) : done < 0 ? done : -11;
  }
}

const UFFDIO_WAKE = 0x8010aa02n; // _IOR(0xAA, 0x02, struct uffdio_range): 16 bytes

/** Wakes the threads waiting on a fault in [start, start+len) (a fault someone else resolved). */
export function uffdWake(fd: number, start: bigint, len: bigint): number {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  const r = syscallRaw('ioctl', fd, UFFDIO_WAKE, addressOf(b));
  return r < 0n ? Number(r) : 0;
}

/** A userfaultfd of stasis's own (O_CLOEXEC | O_NONBLOCK), for probing what the kernel grants; -errno where there is none. */
export function userfaultfdOwn(): number {
  return Number(syscallRaw('userfaultfd', 0o2000000 | 0o4000));
}
