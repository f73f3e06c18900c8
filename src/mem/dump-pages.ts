// Writing a task's private pages to a pages image: the pagemap says which pages hold data
// (present or swapped, not the zero page, not an untouched page of a file); the pages are
// gathered with process_vm_readv into one reused buffer, many runs per syscall, and
// streamed to the image, so memory use stays flat whatever the size of the task.
import fs from 'node:fs';
import { vmReadv, ProcMem } from '../sys/index.js';
import { scanPagemap } from '../proc/pagemap.js';
import { VMA, hasDumpablePages, type VmaSpec } from './vma.js';
import type { PageRun } from './page-runs.js';

const PAGE = 4096;
const BUF_SIZE = 4 << 20;
const PAGEMAP_CHUNK = 65536; // entries per pagemap read: 512 KiB
const IOV_MAX = 1024;

export interface PageDumpStats {
  pagesScanned: number;
  pagesWritten: number;
}

export class PageDumper {
  private readonly buf = Buffer.allocUnsafe(BUF_SIZE);
  private readonly iov = Buffer.alloc(IOV_MAX * 16);
  private segs: { addr: bigint; len: number }[] = [];
  private used = 0;
  private readonly pagemapFd: number;
  private procMem: ProcMem | null = null;
  readonly runs: PageRun[] = [];
  readonly stats: PageDumpStats = { pagesScanned: 0, pagesWritten: 0 };

  constructor(
    private readonly pid: number,
    private readonly outFd: number,
    private readonly zeroPfn: bigint | null,
    /** Called after each scanned chunk with the pages scanned so far. */
    private readonly onScanned?: (pages: number) => void,
  ) {
    this.pagemapFd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  }

  dumpVmas(vmas: VmaSpec[]): void {
    const pm = Buffer.allocUnsafe(PAGEMAP_CHUNK * 8);
    for (const v of vmas) {
      if (!hasDumpablePages(v)) continue;
      const excludeFile = (v.status & VMA.FILE_PRIVATE) !== 0;
      for (let addr = v.start; addr < v.end; ) {
        const pages = Math.min(PAGEMAP_CHUNK, Number((v.end - addr) / BigInt(PAGE)));
        const n = fs.readSync(this.pagemapFd, pm, 0, pages * 8, Number(addr / BigInt(PAGE)) * 8);
        if (n !== pages * 8) throw new Error(`Short read of /proc/${this.pid}/pagemap at 0x${addr.toString(16)}`);
        this.stats.pagesScanned += pages;
        for (const run of scanPagemap(pm.subarray(0, n), addr, PAGE, this.zeroPfn, { excludeFile })) {
          this.addRun(run.vaddr, run.nrPages);
        }
        addr += BigInt(pages * PAGE);
        this.onScanned?.(this.stats.pagesScanned);
      }
    }
    this.flush();
  }

  private addRun(vaddr: bigint, nrPages: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last.vaddr + BigInt(last.nrPages * PAGE) === vaddr) last.nrPages += nrPages;
    else this.runs.push({ vaddr, nrPages });
    this.stats.pagesWritten += nrPages;
    let addr = vaddr;
    let left = nrPages * PAGE;
    while (left > 0) {
      const room = BUF_SIZE - this.used;
      if (room === 0 || this.segs.length === IOV_MAX) {
        this.flush();
        continue;
      }
      const len = Math.min(room, left);
      this.segs.push({ addr, len });
      this.used += len;
      addr += BigInt(len);
      left -= len;
    }
  }

  private flush(): void {
    if (this.used === 0) return;
    this.segs.forEach((s, i) => {
      this.iov.writeBigUInt64LE(s.addr, i * 16);
      this.iov.writeBigUInt64LE(BigInt(s.len), i * 16 + 8);
    });
    const got = vmReadv(this.pid, this.buf, this.used, this.iov, this.segs.length);
    if (got < this.used) this.readRest(got);
    let off = 0;
    while (off < this.used) off += fs.writeSync(this.outFd, this.buf, off, this.used - off);
    this.segs = [];
    this.used = 0;
  }

  /** What process_vm_readv could not read (PROT_NONE pages): through /proc/PID/mem. */
  private readRest(from: number): void {
    this.procMem ??= new ProcMem(this.pid);
    let pos = 0;
    for (const s of this.segs) {
      const end = pos + s.len;
      if (end > from) {
        const skip = Math.max(0, from - pos);
        const n = this.procMem.read(s.addr + BigInt(skip), this.buf, pos + skip, s.len - skip);
        if (n !== s.len - skip) throw new Error(`Cannot read pid ${this.pid} memory at 0x${(s.addr + BigInt(skip)).toString(16)}`);
      }
      pos = end;
    }
  }

  close(): void {
    fs.closeSync(this.pagemapFd);
    this.procMem?.close();
  }
}
