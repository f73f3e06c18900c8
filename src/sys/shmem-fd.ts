// Shared-memory objects held by stasis itself: memfds it creates, shmem files it reaches
// through /proc/PID/map_files, and the SEEK_DATA/SEEK_HOLE walk over their pages.
import fs from 'node:fs';
import { addressOf, syscall, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

const SEEK_DATA = 3, SEEK_HOLE = 4;
const ENXIO = 6;
export const MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
export const F_ADD_SEALS = 1033, F_GET_SEALS = 1034;

export function memfdCreate(name: string, flags: number): number {
  const p = Buffer.from(name + '\0');
  return Number(syscall('memfd_create', addressOf(p), flags));
}

export function ftruncateFd(fd: number, size: bigint): void {
  syscall('ftruncate', fd, size);
}

export function fchownFd(fd: number, uid: number, gid: number): void {
  syscall('fchown', fd, uid, gid);
}

/**
 * The data ranges of a file from `from` (bytes), as [start, end) pairs: SEEK_DATA then
 * SEEK_HOLE until ENXIO. On shmem this sees every page in the object's page cache or swap,
 * whether or not any process maps it now.
 */
export function dataRanges(fd: number, from: bigint, to: bigint): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  let off = from;
  while (off < to) {
    const d = syscallRaw('lseek', fd, off, SEEK_DATA);
    if (d === -BigInt(ENXIO)) break;
    if (d < 0n) throw new SyscallError('lseek', Number(-d), `SEEK_DATA fd ${fd}`);
    const h = syscallRaw('lseek', fd, d, SEEK_HOLE);
    if (h < 0n) throw new SyscallError('lseek', Number(-h), `SEEK_HOLE fd ${fd}`);
    out.push([d, h < to ? h : to]);
    off = h;
  }
  return out;
}

/** statfs f_type of hugetlbfs (include/uapi/linux/magic.h). */
const HUGETLBFS_MAGIC = 0x958458f6;

/** The huge page size of the file at `path` (a /proc link is followed), or 0 when it is not on hugetlbfs. */
export function hugetlbfsPageSize(path: string): number {
  const st = fs.statfsSync(path);
  return st.type === HUGETLBFS_MAGIC ? st.bsize : 0;
}

/** Maps `len` bytes of `fd` from offset 0 shared into stasis (hugetlbfs has no write(): its pages are filled through a mapping). */
export function mmapFdSelf(fd: number, len: number, prot: number): bigint {
  return syscall('mmap', 0, len, prot, 0x01, fd, 0);
}
