// VMA descriptions as the image keeps them (CRIU's VmaEntry: status bits, MAP_* flags,
// PROT_* bits and a bitmap of MADV_* advice). Changing these values changes the format.

import type { PageRuns } from './page-list.js';

export const VMA = {
  REGULAR: 1 << 0, STACK: 1 << 1, VSYSCALL: 1 << 2, VDSO: 1 << 3, HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6, FILE_SHARED: 1 << 7, ANON_SHARED: 1 << 8, ANON_PRIVATE: 1 << 9,
  SYSVIPC: 1 << 10, SOCKET: 1 << 11, VVAR: 1 << 12, AIORING: 1 << 13, MEMFD: 1 << 14, GUARD: 1 << 16,
  UNSUPP: 1 << 31,
} as const;

export const MAP = {
  SHARED: 0x01, PRIVATE: 0x02, DROPPABLE: 0x08, ANONYMOUS: 0x20, GROWSDOWN: 0x100, LOCKED: 0x2000, NORESERVE: 0x4000,
} as const;
export const PROT = { READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MADV = { DONTFORK: 10, MERGEABLE: 12, HUGEPAGE: 14, NOHUGEPAGE: 15, DONTDUMP: 16, WIPEONFORK: 18 } as const;

export interface VmaSpec {
  start: bigint;
  end: bigint;
  pgoff: bigint;
  /** File id for file mappings, shmem object id for shared anonymous memory. */
  shmid: bigint;
  prot: number;
  flags: number;
  status: number;
  madv: bigint;
  /** Access mode the mapped file is opened with (O_RDWR where the mapping may become writable). */
  fdflags: number;
}

/** Areas restore maps itself; the kernel provides the vDSO, vvar and vsyscall pages. */
export function isMappedByRestore(v: VmaSpec): boolean {
  return (v.status & (VMA.VDSO | VMA.VVAR | VMA.VSYSCALL)) === 0;
}

/** Areas whose pages go to the image: private memory; shared file pages live in their file. */
export function hasDumpablePages(v: VmaSpec): boolean {
  if (!isMappedByRestore(v) || isDroppable(v)) return false;
  return (v.status & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) !== 0;
}

/** Areas that map a shmem object (shared anonymous memory, /dev/zero, a memfd): pages dumped once per object. */
export function isShmemVma(v: { status: number }): boolean {
  return (v.status & (VMA.ANON_SHARED | VMA.MEMFD)) !== 0 && !(v.status & VMA.SYSVIPC);
}

/**
 * MAP_DROPPABLE memory (Linux 6.11): the kernel may free its pages at any time, so its
 * contents are not kept; it comes back empty (a restore is such a time, as for CRIU).
 */
export function isDroppable(v: { flags: number }): boolean {
  return (v.flags & 0x0f) === MAP.DROPPABLE;
}

/** The index of the first of `ends` (ascending) above `s`: the first range, sorted and disjoint, that ends after `s`. */
export function firstEndingAfter(ends: readonly number[], s: number): number {
  let lo = 0, hi = ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ends[mid]! <= s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The areas of `vmas` that hold at least one page of `runs` (a run may cross from one area
 * into the next): a binary search per run over the areas sorted by address, not a scan of
 * every area for each of the thousands of runs a big, holey area has.
 */
export function areasWithPages<T extends { start: bigint; end: bigint }>(runs: PageRuns, vmas: readonly T[]): Set<T> {
  // In page numbers (user addresses are below 2^47): this runs cold, before the restored task can.
  const sorted = [...vmas].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const starts = sorted.map((v) => Number(v.start) / 4096), ends = sorted.map((v) => Number(v.end) / 4096);
  const out = new Set<T>();
  const { n, page, count } = runs;
  for (let r = 0, i = 0; r < n; r++) {
    const s = page[r]!, e = s + count[r]!;
    // Runs come in address order: the search starts from the area the last one met, where that is still the first that ends after s.
    if (i >= sorted.length || ends[i]! <= s || (i > 0 && ends[i - 1]! > s)) i = firstEndingAfter(ends, s);
    for (let k = i; k < sorted.length && starts[k]! < e; k++) out.add(sorted[k]!);
  }
  return out;
}
