// hugetlb memory (CRIU's hugetlb.c): MAP_HUGETLB areas, private or shared, and memfds made
// with MFD_HUGETLB. Their pages are the kernel's huge pages of one size, which the MAP_* and
// MFD_* flags carry in bits 26-31 (log2 of the size, include/uapi/asm-generic/hugetlb_encode.h).
// The image keeps them CRIU's way: a VMA's flags hold MAP_HUGETLB | MAP_HUGE_<size>, a memfd's
// inode entry holds MFD_HUGETLB | MFD_HUGE_<size> in hugetlb_flag. Changing these values
// changes the format.
export const MAP_HUGETLB = 0x40000;
export const MFD_HUGETLB = 4;
export const HUGE_SHIFT = 26;
export const HUGE_SIZE_MASK = 0x3f << HUGE_SHIFT;
/** The huge page sizes stasis restores: 2 MiB only (1 GiB pages cannot be reserved at run time on most machines). */
export const HUGE_2MB = 2 << 20;

/** The size bits of MAP_HUGE_<size> / MFD_HUGE_<size> for a page of `bytes`. */
export function hugeSizeFlag(bytes: number): number {
  return (Math.log2(bytes) << HUGE_SHIFT) >>> 0;
}

/** The page size a MAP_*, or MFD_*, flags word names; 0 when it has no MAP_HUGETLB (`bit`). */
export function hugePageOf(flags: number, bit = MAP_HUGETLB): number {
  if (!(flags & bit)) return 0;
  const log = (flags >>> HUGE_SHIFT) & 0x3f;
  return log ? 2 ** log : HUGE_2MB;
}

export { hugetlbfsPageSize } from '../sys/index.js';

/** `n` rounded up to whole pages of `page` bytes. */
export function roundUp(n: bigint, page: number): bigint {
  const p = BigInt(page);
  return ((n + p - 1n) / p) * p;
}
