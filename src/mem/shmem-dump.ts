// Shared memory of a whole tree, dumped once per object whatever the number of processes
// and VMAs mapping it (CRIU's shmem.c). An object is a shmem inode: MAP_SHARED|MAP_ANONYMOUS
// memory (inherited over fork), a shared mapping of /dev/zero, a memfd mapped shared. Its
// pages go to pagemap-shmem-<inode>.img (vaddr = byte offset in the object) and their own
// pages-N.img. A page is written when it is used: present or swapped in some mapper (each
// mapper's pagemap at the page's address, offset by its VMA's pgoff) and not the zero page,
// or holding data in the object itself (SEEK_DATA through /proc/PID/map_files), which sees
// pages no process maps right now.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { dataRanges, fcntl, F_GET_SEALS } from '../sys/index.js';
import { scanPagemap } from '../proc/pagemap.js';
import { writeImage, imagePath, pagemapEntry } from '../image/index.js';
import { PagemapHeadSchema } from '../image/gen/stasis/pagemap_pb.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { MemfdInodeEntrySchema, type MemfdInodeEntry } from '../image/gen/stasis/memfd_pb.js';
import { FownEntrySchema } from '../image/gen/stasis/fown_pb.js';
import type { VmaEntry } from '../image/gen/stasis/vma_pb.js';
import { StasisError } from '../errors.js';
import { VMA, MAP, isShmemVma, type VmaSpec } from './vma.js';
import { PageBitmap } from './page-bitmap.js';
import { HUGE_2MB, MFD_HUGETLB, hugeSizeFlag, hugetlbfsPageSize } from './hugetlb.js';
import { ParentPages, copyShmemPages } from './shmem-pages.js';
import { createImageFile } from '../image/image-modes.js';

const PAGE = 4096;
/** The inode entry name of shared anonymous memory open as a file (as CRIU 4.2 names it: its path, " (deleted)" stripped). */
export const ANON_SHMEM_NAME = '/dev/zero';
const BUF_SIZE = 4 << 20;
const PAGEMAP_CHUNK = 65536;

interface Mapping {
  pid: number;
  vma: VmaSpec;
}

export interface ShmemObject {
  /** The shmem inode number: the object's shmid in the images. */
  ino: bigint;
  memfd: boolean;
  /** For memfds: the id of its MemfdFileEntry in files.img, which the VMAs name. */
  fileId: number;
  mappings: Mapping[];
  /** Where to open the object when no VMA maps it: an fd of a task (/proc/PID/fd/N). */
  fdPath?: string;
  /** For memfds: the id of its MemfdInodeEntry, which open fds name too. */
  inodeId: number;
  /** The huge page size of a hugetlb object (bytes), 0 for small pages. */
  hugePage?: number;
  /** Pages used by some mapper or held by the object; a `dirty` bitmap would sit beside it. */
  used?: PageBitmap;
}

export interface ShmemDumpStats {
  objects: number;
  pagesScanned: number;
  pagesWritten: number;
  /** Used pages equal to the parent's copy: in_parent entries. */
  pagesSkippedParent: number;
}

export class ShmemDumper {
  readonly objects = new Map<bigint, ShmemObject>();
  /** MemfdFileEntry items for files.img, and MemfdInodeEntry items for memfd.img. */
  readonly files: FileEntry[] = [];
  readonly memfdInodes: MemfdInodeEntry[] = [];
  readonly stats: ShmemDumpStats = { objects: 0, pagesScanned: 0, pagesWritten: 0, pagesSkippedParent: 0 };
  private readonly buf = Buffer.allocUnsafe(BUF_SIZE);
  /** The parent's copy of the pages being compared (incremental dumps only). */
  private pbuf: Buffer | null = null;

  private nextInodeId = 1;

  constructor(private readonly zeroPfn: bigint | null, private readonly freshId: () => number) {}

  /**
   * Notes a memfd open at fd `fd` of `pid`, or shared anonymous memory opened as a file
   * (through /proc/PID/map_files: `anon`); returns the id of its inode entry, which the fd's
   * entry names. The anonymous object gets an inode entry too (CRIU's way: its fds are
   * MemfdFileEntry items), named ANON_SHMEM_NAME, which restore makes anonymous memory again.
   */
  addMemfdFd(pid: number, fd: number, ino: bigint, anon = false): number {
    let o = this.objects.get(ino);
    if (!o) {
      o = { ino, memfd: !anon, fileId: anon ? 0 : this.freshId(), mappings: [], inodeId: this.nextInodeId++ };
      this.objects.set(ino, o);
    }
    if (!o.inodeId) o.inodeId = this.nextInodeId++;
    o.fdPath ??= `/proc/${pid}/fd/${fd}`;
    return o.inodeId;
  }

  /**
   * Notes the shared VMAs of a task. collect-vmas.ts leaves each one's inode in shmid; a
   * memfd's VMAs get its file id instead, in `vmas` and in the mm image's `entries` alike.
   */
  add(pid: number, vmas: VmaSpec[], entries: VmaEntry[]): void {
    vmas.forEach((v, i) => {
      if (!isShmemVma(v)) return;
      const memfd = (v.status & VMA.MEMFD) !== 0;
      let o = this.objects.get(v.shmid);
      if (!o) {
        o = { ino: v.shmid, memfd, fileId: memfd ? this.freshId() : 0, mappings: [], inodeId: memfd ? this.nextInodeId++ : 0 };
        this.objects.set(v.shmid, o);
      }
      o.mappings.push({ pid, vma: v });
      if (memfd) {
        v.shmid = BigInt(o.fileId);
        const e = entries[i];
        if (e) e.shmid = v.shmid;
      }
    });
  }

  /** Writes every object's pages; pages ids from `firstPagesId` on. `note` hears of each file before it is written. */
  dump(imagesDir: string, firstPagesId: number, note: (file: string) => void, parentDir: string | null = null): void {
    let pagesId = firstPagesId;
    for (const o of this.objects.values()) {
      const first = o.mappings[0];
      const where = first ? `shared memory ${o.ino} (0x${first.vma.start.toString(16)}-0x${first.vma.end.toString(16)} of pid ${first.pid})` : `memfd ${o.ino} (${o.fdPath})`;
      const mapFile = first ? `/proc/${first.pid}/map_files/${first.vma.start.toString(16)}-${first.vma.end.toString(16)}` : o.fdPath!;
      let fd: number;
      try {
        fd = fs.openSync(mapFile, 'r');
      } catch (err) {
        throw new StasisError('E_DUMP_FAILED', `Cannot open ${mapFile} for ${where}: ${(err as Error).message}`, { cause: err });
      }
      try {
        const st = fs.fstatSync(fd, { bigint: true });
        if (st.ino !== o.ino) throw new StasisError('E_DUMP_FAILED', `${mapFile} has inode ${st.ino}, not ${o.ino}`);
        if ((st.mode & 0o170000n) !== 0o100000n) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${where}: ${mapFile} is not shared memory (mode 0${st.mode.toString(8)})`);
        o.hugePage = hugetlbfsPageSize(mapFile);
        if (o.hugePage && o.hugePage !== HUGE_2MB) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${where}: its pages are of ${o.hugePage >> 10} kB, and stasis restores only 2048 kB ones`);
        const extent = o.mappings.reduce((m, x) => {
          const end = x.vma.pgoff + x.vma.end - x.vma.start;
          return end > m ? end : m;
        }, st.size);
        const used = this.usedPages(o, fd, Number((extent + BigInt(PAGE - 1)) / BigInt(PAGE)));
        o.used = used;
        const pagesPath = imagePath(imagesDir, 'pages', pagesId);
        note(pagesPath);
        const runs = used.runs();
        const parent = ParentPages.open(parentDir, o.ino);
        const out = createImageFile(pagesPath);
        let copied;
        try {
          this.pbuf ??= parent ? Buffer.allocUnsafe(BUF_SIZE) : null;
          copied = copyShmemPages(fd, runs, out, parent, this.buf, this.pbuf ?? this.buf);
        } finally {
          fs.closeSync(out);
          parent?.close();
        }
        this.stats.objects++;
        this.stats.pagesScanned += used.nrPages;
        this.stats.pagesWritten += copied.written;
        this.stats.pagesSkippedParent += runs.reduce((n, r) => n + r.nrPages, 0) - copied.written;
        note(imagePath(imagesDir, 'shmem-pagemap', Number(o.ino)));
        writeImage(imagesDir, 'shmem-pagemap', Number(o.ino), {
          head: create(PagemapHeadSchema, { pagesId }),
          entries: copied.entries.map((e) => pagemapEntry(e.vaddr, e.nrPages, e.flags)),
        });
        pagesId++;
        if (o.inodeId) this.describeMemfd(o, fd, mapFile, st);
      } finally {
        fs.closeSync(fd);
      }
    }
  }

  /** The used bitmap: every mapper's pagemap, then the object's own data ranges. */
  private usedPages(o: ShmemObject, fd: number, nrPages: number): PageBitmap {
    const used = new PageBitmap(nrPages);
    const pm = Buffer.allocUnsafe(PAGEMAP_CHUNK * 8);
    for (const { pid, vma } of o.mappings) {
      // A private mapper's pages are its own copies (dumped with its memory), or the object's.
      if (vma.flags & MAP.PRIVATE) continue;
      const pmFd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
      try {
        const firstPage = Number(vma.pgoff / BigInt(PAGE));
        for (let addr = vma.start; addr < vma.end; ) {
          const pages = Math.min(PAGEMAP_CHUNK, Number((vma.end - addr) / BigInt(PAGE)));
          const n = fs.readSync(pmFd, pm, 0, pages * 8, Number(addr / BigInt(PAGE)) * 8);
          if (n !== pages * 8) throw new StasisError('E_DUMP_FAILED', `Short read of /proc/${pid}/pagemap at 0x${addr.toString(16)}`);
          for (const r of scanPagemap(pm.subarray(0, n), addr, PAGE, this.zeroPfn)) {
            used.setRange(firstPage + Number((r.vaddr - vma.start) / BigInt(PAGE)), r.nrPages);
          }
          addr += BigInt(pages * PAGE);
        }
      } finally {
        fs.closeSync(pmFd);
      }
    }
    if (o.hugePage) {
      this.nonZeroPages(fd, nrPages, used);
      return used;
    }
    for (const [start, end] of dataRanges(fd, 0n, BigInt(nrPages) * BigInt(PAGE))) {
      const p = Number(start / BigInt(PAGE));
      used.setRange(p, Number((end + BigInt(PAGE - 1)) / BigInt(PAGE)) - p);
    }
    return used;
  }

  /**
   * hugetlbfs answers SEEK_DATA with the whole file (default_llseek): the object's pages no
   * process maps are found by reading it instead (a hole reads as zeros and stays a hole).
   */
  private nonZeroPages(fd: number, nrPages: number, used: PageBitmap): void {
    const zero = Buffer.alloc(PAGE);
    for (let p = 0; p < nrPages; ) {
      const pages = Math.min(nrPages - p, this.buf.length / PAGE);
      const n = fs.readSync(fd, this.buf, 0, pages * PAGE, p * PAGE);
      for (let i = 0; i * PAGE < n; i++) {
        if (!this.buf.subarray(i * PAGE, Math.min(n, (i + 1) * PAGE)).equals(zero.subarray(0, Math.min(PAGE, n - i * PAGE)))) used.setRange(p + i, 1);
      }
      if (n < pages * PAGE) break;
      p += pages;
    }
  }

  private describeMemfd(o: ShmemObject, fd: number, mapFile: string, st: fs.BigIntStats): void {
    const inodeId = o.inodeId;
    const link = fs.readlinkSync(mapFile).replace(/ \(deleted\)$/, '');
    const name = o.memfd ? link.slice('/memfd:'.length) : ANON_SHMEM_NAME;
    if (o.memfd && name === ANON_SHMEM_NAME) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump memfd ${o.ino} (${mapFile}): its name ${name} is the one stasis gives shared anonymous memory open as a file`);
    }
    const writable = o.mappings.some((m) => (m.vma.fdflags & 3) === 2);
    this.memfdInodes.push(create(MemfdInodeEntrySchema, {
      name, uid: Number(st.uid), gid: Number(st.gid), size: st.size, shmid: Number(o.ino),
      seals: fcntl(fd, F_GET_SEALS), inodeId: BigInt(inodeId), mode: Number(st.mode),
      ...(o.hugePage ? { hugetlbFlag: MFD_HUGETLB | hugeSizeFlag(o.hugePage) } : {}),
    }));
    // Anonymous memory's VMAs name the object itself; only a memfd's name a file entry.
    if (!o.memfd) return;
    this.files.push(create(FileEntrySchema, {
      type: FdTypes.MEMFD, id: o.fileId,
      memfd: {
        id: o.fileId, flags: writable ? 2 : 0, pos: 0n, inodeId,
        fown: create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 }),
      },
    }));
  }
}
