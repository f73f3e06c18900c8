// The shared memory objects of an image set: one per shmid, however many VMAs of however
// many tasks map it. Shared anonymous memory is named by the VMA's shmid itself; a memfd's
// VMAs name a MemfdFileEntry in files.img, whose inode (memfd.img) carries the shmid. Each
// object's pages are in pagemap-shmem-<shmid>.img (vaddr = offset in the object), through the
// parent chain of an incremental dump.
import { isFieldSet } from '@bufbuild/protobuf';
import { readImage, imageExists } from '../image/index.js';
import { MemfdInodeEntrySchema } from '../image/gen/stasis/memfd_pb.js';
import { resolvePages, type PageSource } from '../mem/page-chain.js';
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { MmEntry } from '../image/gen/stasis/mm_pb.js';
import { VMA, isShmemVma } from '../mem/vma.js';
import { MFD_HUGETLB, hugePageOf } from '../mem/hugetlb.js';
import { noReads, runsEnd, type PageRuns } from '../mem/page-list.js';
import { StasisError } from '../errors.js';
import { ANON_SHMEM_NAME } from '../mem/shmem-dump.js';

const PAGE = 4096n;

export interface ShmemImage {
  shmid: bigint;
  /** Bytes: the memfd's size, or the furthest any VMA (or page) reaches into the object. */
  size: bigint;
  /** Offsets in the object that hold data. */
  runs: PageRuns;
  /** Where those pages are stored: this set's pages image, or its parents' (incremental dumps). */
  sources: PageSource[];
  memfd?: { name: string; uid: number; gid: number; seals: number; mode?: number | undefined };
  /** A hugetlb object's page size in bytes (from its VMAs' MAP_HUGE_* bits, or a memfd's hugetlb_flag); 0 for small pages. */
  hugePage: number;
  /**
   * Shared anonymous memory that was open as a file (its inode entry named ANON_SHMEM_NAME):
   * made anonymous again, of its size exactly, with its owner and mode.
   */
  anon?: { uid: number; gid: number; mode?: number | undefined };
}

export interface ShmemImages {
  objects: Map<bigint, ShmemImage>;
  /** A memfd VMA's shmid (a file id) to the object's shmid. */
  memfdFiles: Map<number, bigint>;
  /** A memfd inode entry's id (what open memfd fds name) to the object's shmid. */
  memfdInodes: Map<number, bigint>;
}

/** The object a VMA maps, by the rules above. */
export function shmidOfVma(set: ShmemImages, v: { status: number; shmid: bigint; start: bigint }): bigint {
  const id = v.status & VMA.MEMFD ? set.memfdFiles.get(Number(v.shmid)) : v.shmid;
  if (id === undefined || !set.objects.has(id)) {
    throw new StasisError('E_CORRUPT', `The shared mapping at 0x${v.start.toString(16)} names object ${v.shmid}, which the images lack`);
  }
  return id;
}

/**
 * `criuImages`: the set is CRIU's, which writes no pagemap-shmem image for an object without
 * pages (a memfd never written: zdtm memfd01); stasis writes one for every object, so in its
 * own sets a missing one is damage.
 */
export function readShmem(dir: string, mms: MmEntry[], files: Map<number, FileEntry>, criuImages = false): ShmemImages {
  const inodes = imageExists(dir, 'memfd-inode', undefined) ? readImage(dir, 'memfd-inode', undefined) : [];
  const objects = new Map<bigint, ShmemImage>();
  const memfdFiles = new Map<number, bigint>();
  const memfdInodes = new Map<number, bigint>();
  const object = (shmid: bigint): ShmemImage => {
    let o = objects.get(shmid);
    if (!o) {
      o = { shmid, size: 0n, hugePage: 0, ...readPages(dir, shmid, criuImages) };
      objects.set(shmid, o);
    }
    return o;
  };
  // Every memfd is an object, whether tasks map it, hold it open, or both.
  for (const ino of inodes) {
    const o = object(BigInt(ino.shmid));
    const mode = isFieldSet(ino, MemfdInodeEntrySchema.field.mode) ? ino.mode : undefined;
    if (ino.name === ANON_SHMEM_NAME) o.anon = { uid: ino.uid, gid: ino.gid, mode };
    else o.memfd = { name: ino.name, uid: ino.uid, gid: ino.gid, seals: ino.seals, mode };
    if (ino.hugetlbFlag) o.hugePage = hugePageOf(ino.hugetlbFlag, MFD_HUGETLB);
    if (ino.size > o.size) o.size = ino.size;
    memfdInodes.set(Number(ino.inodeId), o.shmid);
  }
  for (const mm of mms) {
    for (const v of mm.vmas) {
      if (!isShmemVma(v)) continue;
      let o: ShmemImage;
      if (v.status & VMA.MEMFD) {
        // The object was made from its inode entry above.
        const f = files.get(Number(v.shmid))?.memfd;
        const shmid = f && memfdInodes.get(f.inodeId);
        if (shmid === undefined) throw new StasisError('E_CORRUPT', `The memfd mapping at 0x${v.start.toString(16)} names file ${v.shmid}, which files.img or memfd.img lacks`);
        o = objects.get(shmid)!;
        memfdFiles.set(Number(v.shmid), shmid);
      } else {
        o = object(v.shmid);
      }
      const huge = hugePageOf(v.flags);
      if (huge && o.hugePage && huge !== o.hugePage) throw new StasisError('E_CORRUPT', `The hugetlb mapping at 0x${v.start.toString(16)} has pages of ${huge} bytes, its object ${o.shmid} of ${o.hugePage}`);
      if (huge) o.hugePage = huge;
      // A private mapping may reach past the object's end (its pages there fault with SIGBUS).
      const end = v.pgoff + v.end - v.start;
      if (!sized(o) && end > o.size) o.size = end;
    }
  }
  for (const o of objects.values()) {
    const end = BigInt(runsEnd(o.runs));
    // Pages of anonymous memory past every VMA (its tail was unmapped) are kept with it.
    // A memfd's last page is dumped whole, also where the file ends inside it.
    if (sized(o) && end > o.size && end <= ((o.size + PAGE - 1n) / PAGE) * PAGE) continue;
    if (end > o.size) {
      if (sized(o)) throw new StasisError('E_CORRUPT', `pagemap-shmem-${o.shmid}.img reaches offset ${end}, past the memfd's size ${o.size}`);
      o.size = end;
    }
  }
  return { objects, memfdFiles, memfdInodes };
}

/** An object whose size the images give (a memfd, or anonymous memory that was open as a file). */
export function sized(o: ShmemImage): boolean {
  return o.memfd !== undefined || o.anon !== undefined;
}

function readPages(dir: string, shmid: bigint, criuImages: boolean): { runs: PageRuns; sources: PageSource[] } {
  if (criuImages && !imageExists(dir, 'shmem-pagemap', Number(shmid))) return { runs: noReads(), sources: [] };
  return resolvePages(dir, { kind: 'shmem-pagemap', id: Number(shmid) });
}
