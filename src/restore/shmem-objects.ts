// The shared memory objects, made once each in stasis before any task is rebuilt: sized,
// filled from their pages image with large pwrites, then mapped by every task that mapped
// them (address-space.ts pulls the fd in with pidfd_getfd). Shared anonymous memory is made
// the way the kernel makes it (an anonymous MAP_SHARED area of stasis, reopened through
// /proc/self/map_files and unmapped), so that the tasks' maps show "/dev/zero (deleted)" as
// before; where map_files cannot be opened, a memfd stands in. A memfd is a memfd of its name.
import fs from 'node:fs';
import {
  memfdCreate, ftruncateFd, fchownFd, fcntl, closeFd, mmapSelf, munmapSelf, mmapFdSelf, ProcMem,
  MFD_CLOEXEC, MFD_ALLOW_SEALING, F_ADD_SEALS,
} from '../sys/index.js';
import { MAP_HUGETLB, MFD_HUGETLB, hugeSizeFlag, roundUp } from '../mem/hugetlb.js';
import { readObjects } from '../mem/page-list.js';
import { StasisError } from '../errors.js';
import { shmidOfVma, sized, type ShmemImage, type ShmemImages } from './read-shmem.js';

const BUF_SIZE = 4 << 20;
const PROT_RW = 3, MAP_SHARED_ANON = 0x21;
const F_SEAL_SEAL = 1;

export class ShmemObjects {
  private readonly fds = new Map<bigint, number>();

  private constructor(private readonly images: ShmemImages) {}

  static create(images: ShmemImages): ShmemObjects {
    const s = new ShmemObjects(images);
    if (images.objects.size === 0) return s;
    const buf = Buffer.allocUnsafe(BUF_SIZE);
    try {
      for (const o of images.objects.values()) {
        const fd = makeObject(o);
        s.fds.set(o.shmid, fd);
        fill(fd, o, buf);
        const owner = o.memfd ?? o.anon;
        if (owner) fchownFd(fd, owner.uid, owner.gid);
        if (owner?.mode !== undefined) fs.fchmodSync(fd, owner.mode & 0o7777);
      }
      return s;
    } catch (err) {
      s.close();
      if (err instanceof StasisError) throw err;
      throw new StasisError('E_RESTORE_FAILED', `Cannot rebuild shared memory: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The fd in stasis of the object a shared VMA maps. */
  fdFor(v: { status: number; shmid: bigint; start: bigint }): number {
    return this.fds.get(shmidOfVma(this.images, v))!;
  }

  /** The fd in stasis of the memfd whose inode entry is `inodeId` (for open memfd fds). */
  /**
   * True the first time it is asked for a memfd: that fd may take the open file
   * memfd_create() made (see files/memfd.ts), later ones get files of their own.
   */
  takeCreated(inodeId: number): boolean {
    if (this.created.has(inodeId)) return false;
    this.created.add(inodeId);
    return true;
  }

  fdOfInode(inodeId: number): number | undefined {
    const shmid = this.images.memfdInodes.get(inodeId);
    return shmid === undefined ? undefined : this.fds.get(shmid);
  }

  /** A memfd's seals, once every task has mapped it (F_SEAL_FUTURE_WRITE would refuse the mappings). */
  seal(): void {
    for (const o of this.images.objects.values()) {
      const seals = o.memfd?.seals ?? F_SEAL_SEAL;
      if (seals !== F_SEAL_SEAL) fcntl(this.fds.get(o.shmid)!, F_ADD_SEALS, seals);
    }
  }

  private readonly created = new Set<number>();

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
    this.fds.clear();
  }
}

function makeObject(o: ShmemImage): number {
  // A hugetlb object is made with huge pages of its size (hugetlbfs sizes are whole huge pages).
  const huge = o.hugePage ? MFD_HUGETLB | hugeSizeFlag(o.hugePage) : 0;
  if (o.memfd) {
    const sealing = o.memfd.seals !== F_SEAL_SEAL ? MFD_ALLOW_SEALING : 0;
    const fd = memfdCreate(o.memfd.name, MFD_CLOEXEC | sealing | huge);
    ftruncateFd(fd, o.size);
    return fd;
  }
  // The kernel makes it of the mapping's size, whole pages: one that was open as a file has its own.
  const len = roundUp(o.size, o.hugePage || 4096) || BigInt(o.hugePage || 4096);
  const addr = mmapSelf(Number(len), PROT_RW, MAP_SHARED_ANON | (o.hugePage ? MAP_HUGETLB | hugeSizeFlag(o.hugePage) : 0));
  try {
    const fd = fs.openSync(`/proc/self/map_files/${addr.toString(16)}-${(addr + len).toString(16)}`, fs.constants.O_RDWR);
    if (len !== o.size) ftruncateFd(fd, o.size);
    return fd;
  } catch {
    const fd = memfdCreate('', MFD_CLOEXEC | huge);
    ftruncateFd(fd, o.hugePage ? len : o.size);
    return fd;
  } finally {
    munmapSelf(addr, Number(len));
  }
}

/**
 * Reads the object's pages from the pages images that hold them, BUF_SIZE bytes at a time and
 * none at or past `end`, and hands each piece (in `buf`) to `put` with its offset in the object.
 */
function forEachPiece(o: ShmemImage, buf: Buffer, put: (n: number, to: number) => void, end = Infinity): void {
  for (const src of o.sources) {
    const from = fs.openSync(src.path, 'r');
    try {
      for (const r of readObjects(src.reads)) {
        let off = r.off;
        let to = Number(r.vaddr);
        let left = r.nrPages * 4096;
        while (left > 0) {
          const n = Math.min(left, BUF_SIZE, end - to);
          if (n <= 0) throw new StasisError('E_CORRUPT', `${src.path} holds pages past the end of shared memory object ${o.shmid} (${end} bytes)`);
          const got = fs.readSync(from, buf, 0, n, off);
          if (got !== n) throw new StasisError('E_TRUNCATED', `${src.path} is short: read ${got} of ${n} bytes at offset ${off}`);
          put(n, to);
          off += n;
          to += n;
          left -= n;
        }
      }
    } finally {
      fs.closeSync(from);
    }
  }
}

/** Copies the object's pages into it. */
function fill(fd: number, o: ShmemImage, buf: Buffer): void {
  if (o.hugePage) {
    fillHuge(fd, o, buf);
    return;
  }
  forEachPiece(o, buf, (len, to) => {
    // Not past a memfd's end (its last page is dumped whole): writing would grow it.
    const keep = sized(o) ? Math.max(0, Math.min(len, Number(o.size) - to)) : len;
    for (let k = 0; k < keep; ) k += fs.writeSync(fd, buf, k, keep - k, to + k);
  });
}

/**
 * hugetlbfs has no write(): the object is mapped into stasis and its pages are written through
 * /proc/self/mem at their place in the mapping (each huge page is allocated by its first write).
 */
function fillHuge(fd: number, o: ShmemImage, buf: Buffer): void {
  if (o.sources.every((s) => s.reads.n === 0)) return;
  const len = Number(roundUp(o.size, o.hugePage));
  const addr = mmapFdSelf(fd, len, PROT_RW);
  const mem = new ProcMem(process.pid, true);
  try {
    forEachPiece(o, buf, (n, to) => mem.write(addr + BigInt(to), buf, 0, n), len);
  } finally {
    mem.close();
    munmapSelf(addr, len);
  }
}
