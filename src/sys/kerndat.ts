// Kernel features, probed and passed around (never a global): `stasis check` prints them. Each
// probe asks the kernel to do the thing, rather than trusting a config. A dump takes them from
// the file the last probe of this boot left (/run/stasis/kdat.json, as CRIU keeps /run/criu.kdat):
// the probes map, fault and unmap pages and open userfaultfds, about 6 ms of a small dump's CPU.
import fs from 'node:fs';
import path from 'node:path';
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

/** Where the features probed in this boot are kept: /run is a tmpfs, emptied at boot. */
export const KDAT_CACHE = '/run/stasis/kdat.json';
const KDAT_VERSION = 1;
const FLAGS = ['kcmp', 'pidfdGetfd', 'clone3SetTid', 'pagemapScan', 'uffdWpAsync', 'softDirty', 'timerRestoreIds', 'lazyPages'] as const;

/** What a cached probe must have been made under: this boot, this kernel, this user in this user namespace. */
function kdatKey(): { bootId: string; release: string; euid: number; userns: string } {
  return {
    bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    release: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    euid: process.geteuid?.() ?? -1,
    userns: fs.readlinkSync('/proc/self/ns/user'),
  };
}

/** The features `file` holds if it was written under `key` and is whole, else undefined. */
function readKdat(file: string, key: ReturnType<typeof kdatKey>): KernelFeatures | undefined {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof j !== 'object' || j === null || j.version !== KDAT_VERSION) return undefined;
  if (j.bootId !== key.bootId || j.release !== key.release || j.euid !== key.euid || j.userns !== key.userns) return undefined;
  const zero = j.zeroPfn;
  if (!(zero === null || (typeof zero === 'string' && /^[1-9][0-9]*$/.test(zero)))) return undefined;
  if (!FLAGS.every((f) => typeof j[f] === 'boolean')) return undefined;
  const flags = Object.fromEntries(FLAGS.map((f) => [f, j[f] as boolean])) as Record<(typeof FLAGS)[number], boolean>;
  return { release: key.release, zeroPfn: zero === null ? null : BigInt(zero), ...flags };
}

/** Keeps `k` in `file` for later runs of this boot (written whole, then renamed); a place it cannot be written is done without. */
export function saveKernelFeatures(k: KernelFeatures, file = KDAT_CACHE): void {
  const key = kdatKey();
  const tmp = `${file}.${process.pid}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const flags = Object.fromEntries(FLAGS.map((f) => [f, k[f]]));
    fs.writeFileSync(tmp, `${JSON.stringify({ version: KDAT_VERSION, ...key, zeroPfn: k.zeroPfn === null ? null : String(k.zeroPfn), ...flags })}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // (its directory could not be made: nothing was written)
    }
  }
}

/**
 * The kernel's features for a dump: those `file` keeps from a probe of this boot, kernel, user
 * and user namespace, else probed now and kept there. (`stasis check` probes afresh: probeKernel.)
 */
export function kernelFeatures(file = KDAT_CACHE): KernelFeatures {
  const kept = readKdat(file, kdatKey());
  if (kept) return kept;
  const k = probeKernel();
  saveKernelFeatures(k, file);
  return k;
}
