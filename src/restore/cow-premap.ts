// Private memory a child shares with its parent copy-on-write since fork() stays shared
// after restore (zdtm cow00, cow01), as CRIU does it: while the tree is still made of stubs,
// a parent maps each private anonymous area one of its children has too (same place, size
// and flags) into a premap zone that no task of the tree uses, fills it with its own pages,
// and only then clones its children, who inherit the area with its pages shared. A child
// compares its pages with what it inherited and writes only those that differ (dropping
// those it does not have), and premaps for its own children in turn. When a task's address
// space is rebuilt its premapped areas are moved into place with mremap, which keeps them
// shared, instead of being mapped and filled afresh.
import fs from 'node:fs';
import type { FdCourier } from './fd-courier.js';
import { ProcMem, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { VMA, MAP, MADV, PROT, isMappedByRestore, type VmaSpec } from '../mem/vma.js';
import { MAP_HUGETLB } from '../mem/hugetlb.js';
import type { PageRead, PageSource } from '../mem/page-chain.js';
import { PageList, cutReads, pageCuts, readObjects, readsFrom, runObjects, type PageRuns } from '../mem/page-list.js';
import type { ImageSet, TaskImages } from './read-images.js';
import { findScratch, fillFrom } from './address-space.js';
import { MappedFiles } from './mapped-files.js';

const PAGE = 4096n;
const HUGE = 2n << 20n;
const MAP_FIXED_NOREPLACE = 0x100000;
const MADV_DONTNEED = 4;
const CHUNK = 1 << 20;

/** An area of a task, premapped at `at`, to be moved to `vma.start`. */
export interface Premap {
  vma: VmaSpec;
  at: bigint;
}

interface Range {
  start: bigint;
  end: bigint;
}

/**
 * Private areas, anonymous or of a file, a fork would hand to a child with their pages
 * (not droppable, not stacks, no DONTFORK or WIPEONFORK).
 */
function inheritable(v: VmaSpec): boolean {
  if (!isMappedByRestore(v) || !(v.status & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) || (v.flags & 0x0f) !== MAP.PRIVATE) return false;
  // hugetlb areas are not premapped: each task maps its own and reads its pages in, so the
  // contents come back but huge pages shared copy-on-write since fork() are copies after restore.
  if (v.flags & (MAP.GROWSDOWN | MAP_HUGETLB)) return false;
  return (v.madv & ((1n << BigInt(MADV.DONTFORK)) | (1n << BigInt(MADV.WIPEONFORK)))) === 0n;
}

// A file's area is the same one where it maps the same file (each task has its own file
// id for it: known by its path, or by its ghost) at the same offset.
function keyOf(mapped: MappedFiles, v: VmaSpec): string {
  return `${v.start}:${v.end}:${v.flags}${v.status & VMA.FILE_PRIVATE ? `:${mapped.identity(v)}:${v.pgoff}` : ''}`;
}

/** The task's VMAs, without its guard regions (VMA_AREA_GUARD entries: pages of other VMAs). */
export function vmaSpecs(t: TaskImages): VmaSpec[] {
  return t.mm.vmas.filter((v) => !(v.status & VMA.GUARD)).map((v) => ({
    start: v.start, end: v.end, pgoff: v.pgoff, shmid: v.shmid, prot: v.prot, flags: v.flags, status: v.status,
    madv: v.madv ?? 0n, fdflags: v.fdflags ?? 0,
  }));
}

/** The parts of `runs` (sorted) inside [start, end). */
function runsIn(runs: PageRuns, start: bigint, end: bigint): Range[] {
  const out: Range[] = [];
  for (const r of runObjects(runs)) {
    const s = r.vaddr, e = r.vaddr + BigInt(r.nrPages) * PAGE;
    if (e <= start || s >= end) continue;
    out.push({ start: s > start ? s : start, end: e < end ? e : end });
  }
  return out;
}

/** [start, end) less the sorted ranges `have`. */
function gaps(have: Range[], start: bigint, end: bigint): Range[] {
  const out: Range[] = [];
  let at = start;
  for (const h of have) {
    if (h.start > at) out.push({ start: at, end: h.start });
    if (h.end > at) at = h.end;
  }
  if (at < end) out.push({ start: at, end });
  return out;
}

function intersect(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  for (const x of a) {
    for (const y of b) {
      const s = x.start > y.start ? x.start : y.start, e = x.end < y.end ? x.end : y.end;
      if (s < e) out.push({ start: s, end: e });
    }
  }
  return out;
}

/** The reads of `sources` for [start, end), moved by `shift` bytes. */
function readsIn(sources: PageSource[], start: bigint, end: bigint, shift: bigint): PageSource[] {
  return sources.map((src) => ({
    path: src.path,
    reads: readsFrom(readObjects(src.reads).flatMap((r): PageRead[] => {
      const s = r.vaddr, e = r.vaddr + BigInt(r.nrPages) * PAGE;
      const cs = s > start ? s : start, ce = e < end ? e : end;
      if (cs >= ce) return [];
      return [{ vaddr: cs + shift, nrPages: Number((ce - cs) / PAGE), off: r.off + Number(cs - s) }];
    })),
  })).filter((s) => s.reads.n > 0);
}

export class CowPremap {
  /** Each task's premapped areas, by pid. */
  readonly premapped = new Map<number, Premap[]>();
  private readonly need = new Map<number, Set<string>>();
  private readonly at = new Map<string, bigint>();
  private readonly tasks = new Map<number, TaskImages>();
  private readonly parentOf = new Map<number, number>();
  private set: ImageSet | undefined;

  private constructor(set: ImageSet, stubMaps: Range[], private readonly mapped: MappedFiles) {
    for (const t of set.tasks) this.tasks.set(t.pstree.pid, t);
    const live = set.order.filter((e) => this.tasks.has(e.pid));
    const keys = new Map<number, Map<string, VmaSpec>>();
    for (const e of live) keys.set(e.pid, new Map(vmaSpecs(this.tasks.get(e.pid)!).filter(inheritable).map((v) => [keyOf(mapped, v), v])));
    // Parents before children: a task premaps an area it inherited, or one a child has too.
    const root = set.order[0]!.pid;
    for (const e of live) {
      if (e.pid !== root && this.tasks.has(e.ppid)) this.parentOf.set(e.pid, e.ppid);
      const mine = keys.get(e.pid)!;
      const inherited = this.need.get(e.ppid);
      const children = live.filter((c) => c.ppid === e.pid && c.pid !== root).map((c) => keys.get(c.pid)!);
      const need = new Set([...mine.keys()].filter((k) => (e.pid !== root && inherited?.has(k)) || children.some((c) => c.has(k))));
      if (need.size) this.need.set(e.pid, need);
    }
    const all = new Map<string, VmaSpec>();
    for (const [pid, need] of this.need) for (const k of need) all.set(k, keys.get(pid)!.get(k)!);
    if (all.size === 0) return;
    this.set = set;
    // Each area at its address modulo 2 MiB (huge pages line up the same), a page apart.
    let size = 0n;
    const offs = new Map<string, bigint>();
    for (const [k, v] of all) {
      size = ((size + HUGE - 1n) / HUGE) * HUGE + (v.start % HUGE);
      offs.set(k, size);
      size += v.end - v.start + PAGE;
    }
    const ranges = [...stubMaps, ...set.tasks.flatMap((t) => t.mm.vmas.map((v) => ({ start: v.start, end: v.end })))];
    const base = ((findScratch(ranges, size + HUGE) + HUGE - 1n) / HUGE) * HUGE;
    for (const [k, o] of offs) this.at.set(k, base + o);
  }

  static plan(set: ImageSet, stubPid: number, mapped: MappedFiles = new MappedFiles(set)): CowPremap {
    return new CowPremap(set, readMaps(stubPid), mapped);
  }


  /**
   * Premaps in the stub of `pid` (before it clones its children) the areas they share:
   * those it inherited corrected to its own pages, the others mapped and filled.
   */
  premap(inj: Injector, pid: number, stasisPidfd?: number, courier?: FdCourier): void {
    const need = this.need.get(pid);
    const t = this.tasks.get(pid);
    if (!need || !t) return;
    const ppid = this.parentOf.get(pid);
    const inherited = ppid === undefined ? undefined : this.need.get(ppid);
    const parent = ppid === undefined ? undefined : this.tasks.get(ppid);
    const out: Premap[] = [];
    const set = this.set!;
    for (const v of vmaSpecs(t).filter((x) => inheritable(x) && need.has(keyOf(this.mapped, x)))) {
      const k = keyOf(this.mapped, v);
      const at = this.at.get(k)!;
      const shift = at - v.start;
      const len = v.end - v.start;
      if (inherited?.has(k) && parent) {
        this.correct(inj, t, parent, v, shift);
      } else {
        const noReserve = v.flags & MAP.NORESERVE;
        const file = v.status & VMA.FILE_PRIVATE ? this.mapped.open(inj, v, stasisPidfd, courier) : -1;
        const r = inj.call('mmap', at, len, PROT.READ | PROT.WRITE, MAP.PRIVATE | (file < 0 ? MAP.ANONYMOUS : 0) | noReserve | MAP_FIXED_NOREPLACE, file, file < 0 ? 0n : v.pgoff);
        if (file >= 0) inj.call('close', file);
        if (r !== at) throw new StasisError('E_RESTORE_FAILED', `Cannot premap 0x${v.start.toString(16)}-0x${v.end.toString(16)} of pid ${pid} at 0x${at.toString(16)}: mmap returned ${r}`);
        for (const src of readsIn(t.pageSources, v.start, v.end, shift)) fillFrom(inj, src);
      }
      out.push({ vma: v, at });
    }
    this.premapped.set(pid, out);
  }

  /**
   * An inherited area: the pages that differ from the parent's are read in, those the task
   * lacks dropped (a file's area reads its file there again).
   */
  private correct(inj: Injector, t: TaskImages, parent: TaskImages, v: VmaSpec, shift: bigint): void {
    const mine = runsIn(t.runs, v.start, v.end);
    for (const g of intersect(gaps(mine, v.start, v.end), runsIn(parent.runs, v.start, v.end))) {
      inj.must('madvise', g.start + shift, g.end - g.start, MADV_DONTNEED);
    }
    const img = Buffer.alloc(CHUNK), cur = Buffer.alloc(CHUNK);
    // Through /proc/PID/mem: process_vm_readv pins the pages, and a pin of a page shared
    // copy-on-write makes the kernel copy it (GUP unsharing, Linux 5.19).
    const mem = new ProcMem(inj.pid);
    try {
      for (const src of readsIn(t.pageSources, v.start, v.end, shift)) this.correctFrom(inj, mem, src, img, cur);
    } finally {
      mem.close();
    }
  }

  private correctFrom(inj: Injector, mem: ProcMem, src: PageSource, img: Buffer, cur: Buffer): void {
    // The pages that differ from what the area holds now: the others stay shared.
    const fd = fs.openSync(src.path, 'r');
    const differ: PageRead[] = [];
    try {
      for (const r of readObjects(src.reads)) {
        for (let done = 0; done < r.nrPages; ) {
          const n = Math.min(r.nrPages - done, CHUNK / 4096);
          const bytes = n * 4096;
          const addr = r.vaddr + BigInt(done) * PAGE;
          if (fs.readSync(fd, img, 0, bytes, r.off + done * 4096) !== bytes) {
            throw new StasisError('E_TRUNCATED', `Pages image ${src.path} is short at offset ${r.off + done * 4096}`);
          }
          const got = mem.read(addr, cur, 0, bytes);
          for (let p = 0; p < n; p++) {
            const o = p * 4096;
            if (o + 4096 <= got && img.compare(cur, o, o + 4096, o, o + 4096) === 0) continue;
            const last = differ[differ.length - 1];
            const pageOff = r.off + (done + p) * 4096;
            if (last && last.off + last.nrPages * 4096 === pageOff && last.vaddr + BigInt(last.nrPages) * PAGE === addr + BigInt(o)) last.nrPages++;
            else differ.push({ vaddr: addr + BigInt(o), nrPages: 1, off: pageOff });
          }
          done += n;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    fillFrom(inj, { path: src.path, reads: readsFrom(differ) });
  }
}

function readMaps(pid: number): Range[] {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean).map((l) => {
    const [s, e] = (l.split(' ')[0] ?? '').split('-');
    return { start: BigInt(`0x${s}`), end: BigInt(`0x${e}`) };
  }).filter((r) => r.end <= 0x7ffffffff000n);
}

/** The reads of `sources` outside the premapped areas (their pages are in place already). */
export function readsOutside(sources: PageSource[], moved: Range[]): PageSource[] {
  if (moved.length === 0) return sources;
  const cuts = pageCuts(moved);
  return sources.map((src) => {
    const out = new PageList();
    cutReads(src.reads, cuts, out);
    return { path: src.path, reads: out.done() };
  });
}
