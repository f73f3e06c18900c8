// Kernel features, probed once per run and passed around (never a global): `stasis check`
// prints them. Each probe asks the kernel to do the thing, rather than trusting a config.
import fs from 'node:fs';
import { addressOf, syscallRaw } from './libc.js';
import { mmapSelf, munmapSelf } from './process.js';
import { vmRead } from './task-mem.js';

export interface KernelFeatures {
  release: string;
  /** PFN of the shared zero page, to tell untouched-but-read pages from data. */
  zeroPfn: bigint | null;
  kcmp: boolean;
  pidfdGetfd: boolean;
  clone3SetTid: boolean;
  pagemapScan: boolean;
  uffdWpAsync: boolean;
  /** Soft-dirty that really tracks writes (probed by writing a page and reading bit 55). */
  softDirty: boolean;
  /** prctl(PR_TIMER_CREATE_RESTORE_IDS) (Linux 6.14): timer_create() at a given id. */
  timerRestoreIds: boolean;
  /** userfaultfd with the fork, remap, remove and unmap events: restore --lazy-pages (mem/lazy-pages.ts). */
  lazyPages: boolean;
}

const PAGEMAP_SCAN = 0xc0606610n;

function pagemapEntry(addr: bigint): bigint {
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, Number(addr / 4096n) * 8);
    return b.readBigUInt64LE(0);
  } finally {
    fs.closeSync(fd);
  }
}

function probeZeroPfn(): bigint | null {
  const addr = mmapSelf(4096, 1, 0x22);
  try {
    vmRead(process.pid, addr, Buffer.alloc(8), 0, 8); // a read fault maps the zero page
    const e = pagemapEntry(addr);
    if (!(e >> 63n)) return null;
    const pfn = e & ((1n << 55n) - 1n);
    return pfn === 0n ? null : pfn;
  } finally {
    munmapSelf(addr, 4096);
  }
}

function probeSoftDirty(): boolean {
  const addr = mmapSelf(4096, 3, 0x22);
  try {
    fs.writeFileSync('/proc/self/clear_refs', '4');
    const mem = fs.openSync('/proc/self/mem', 'r+');
    fs.writeSync(mem, Buffer.from([1]), 0, 1, Number(addr));
    fs.closeSync(mem);
    return ((pagemapEntry(addr) >> 55n) & 1n) === 1n;
  } catch {
    return false;
  } finally {
    munmapSelf(addr, 4096);
  }
}

function probePagemapScan(): boolean {
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    const arg = Buffer.alloc(96);
    arg.writeBigUInt64LE(96n, 0); // size; an empty range
    return syscallRaw('ioctl', fd, PAGEMAP_SCAN, addressOf(arg)) >= 0n;
  } finally {
    fs.closeSync(fd);
  }
}

function probeUffdWpAsync(): boolean {
  const UFFD_USER_MODE_ONLY = 1, O_CLOEXEC = 0o2000000;
  const fd = syscallRaw('userfaultfd', O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (fd < 0n) return false;
  try {
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(0xaan, 0); // UFFD_API
    api.writeBigUInt64LE(1n << 15n, 8); // UFFD_FEATURE_WP_ASYNC
    return syscallRaw('ioctl', fd, 0xc018aa3fn, addressOf(api)) === 0n; // UFFDIO_API
  } finally {
    syscallRaw('close', fd);
  }
}

function probeLazyPages(): boolean {
  const O_CLOEXEC = 0o2000000;
  const fd = syscallRaw('userfaultfd', O_CLOEXEC);
  if (fd < 0n) return false;
  try {
    const want = (1n << 1n) | (1n << 2n) | (1n << 3n) | (1n << 6n); // EVENT_FORK, _REMAP, _REMOVE, _UNMAP
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(0xaan, 0); // UFFD_API
    api.writeBigUInt64LE(want, 8);
    return syscallRaw('ioctl', fd, 0xc018aa3fn, addressOf(api)) === 0n && (api.readBigUInt64LE(8) & want) === want;
  } finally {
    syscallRaw('close', fd);
  }
}

const PR_TIMER_CREATE_RESTORE_IDS = 77, PR_TIMER_CREATE_RESTORE_IDS_GET = 2;

/** Asks for the mode (no change to it): older kernels answer EINVAL. */
export function probeTimerRestoreIds(): boolean {
  return syscallRaw('prctl', PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) >= 0n;
}

export function probeKernel(): KernelFeatures {
  const fdSelf = syscallRaw('pidfd_open', process.pid, 0);
  let pidfdGetfd = false;
  if (fdSelf >= 0n) {
    const r = syscallRaw('pidfd_getfd', fdSelf, 0, 0);
    pidfdGetfd = r >= 0n;
    if (r >= 0n) syscallRaw('close', r);
    syscallRaw('close', fdSelf);
  }
  return {
    release: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    zeroPfn: probeZeroPfn(),
    kcmp: syscallRaw('kcmp', process.pid, process.pid, 0, 0, 0) >= 0n,
    pidfdGetfd,
    clone3SetTid: syscallRaw('clone3', 0, 0) === -22n, // EINVAL: the syscall exists
    pagemapScan: probePagemapScan(),
    uffdWpAsync: probeUffdWpAsync(),
    softDirty: probeSoftDirty(),
    timerRestoreIds: probeTimerRestoreIds(),
    lazyPages: probeLazyPages(),
  };
}
