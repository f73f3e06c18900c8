// Where a restored task's pages come from: its pagemap, read through the chain of parent
// image sets (each set's `parent` symlink, as CRIU links them). A shared memory object's
// pagemap (pagemap-shmem-<shmid>.img, offsets for addresses) is read the same way. A PE_PRESENT entry's pages
// are in that set's pages image, one after another in pagemap order; a PE_PARENT entry's are
// wherever the parent set has them, present there or in its own parent. Every image of the
// chain is read and checked before anything is created.
import fs from 'node:fs';
import path from 'node:path';
import { readPagemapImage, imageExists, imagePath, PE } from '../image/index.js';
import { StasisError } from '../errors.js';
import { orderBy, permuted } from '../float-arrays.js';
import { PageList, sortedByOffset, type PageReads, type PageRuns } from './page-list.js';

const PAGE = 4096;
const MAX_DEPTH = 256;

export type { PageRead } from './page-list.js';

export interface PageSource {
  path: string;
  /** Sorted by file offset. */
  reads: PageReads;
}

export interface TaskPages {
  /** Every page with data, in address order. */
  runs: PageRuns;
  sources: PageSource[];
}

/** The pagemap an image set keeps for a task, or for a shared memory object. */
export type PagemapName = { kind: 'pagemap'; id: number } | { kind: 'shmem-pagemap'; id: number };

const fileName = (m: PagemapName) => (m.kind === 'pagemap' ? `pagemap-${m.id}.img` : `pagemap-shmem-${m.id}.img`);

interface Level {
  dir: string;
  pagesPath: string;
  /** Entries sorted by address: [first page, end page), flags, file offset of PRESENT ones. */
  starts: Float64Array;
  ends: Float64Array;
  flags: Float64Array;
  offs: Float64Array;
  parent: Level | null | undefined; // undefined: not opened yet
  depth: number;
  reads: PageList;
}

function openLevel(dir: string, m: PagemapName, depth: number, seen: Set<string>): Level {
  const name = fileName(m);
  const real = fs.realpathSync(dir);
  if (seen.has(real)) throw new StasisError('E_CORRUPT', `The parent links of ${dir} form a loop`);
  if (depth > MAX_DEPTH) throw new StasisError('E_CORRUPT', `${dir} is more than ${MAX_DEPTH} parent links deep`);
  seen.add(real);
  if (!imageExists(dir, m.kind, m.id)) {
    throw new StasisError('E_NO_IMAGE', depth ? `No ${name} in ${dir}, which a child image set refers to` : `No ${name} in ${dir}`);
  }
  const { head, runs } = readPagemapImage(dir, m.kind, m.id);
  const pagesPath = imagePath(dir, 'pages', head.pagesId);
  // The entries that hold pages, by address (a dump writes them in order: sorted only where
  // they are not), each with its file offset where PRESENT. One pass, into the arrays
  // themselves: it runs cold, before a lazily restored tree can run.
  let starts: Float64Array = new Float64Array(runs.n), ends: Float64Array = new Float64Array(runs.n), flags: Float64Array = new Float64Array(runs.n), offs: Float64Array = new Float64Array(runs.n);
  let k = 0, bytes = 0, sorted = true, last = -1;
  for (let i = 0; i < runs.n; i++) {
    const s = runs.page[i]!, f = runs.flags[i]!, c = runs.count[i]!;
    if (!Number.isInteger(s)) throw new StasisError('E_CORRUPT', `${name} in ${dir} has an entry at unaligned 0x${(s * PAGE).toString(16)}`);
    if (f & PE.PRESENT) {
      offs[k] = bytes;
      flags[k] = PE.PRESENT;
      bytes += c * PAGE;
    } else if (f & PE.PARENT) {
      offs[k] = -1;
      flags[k] = PE.PARENT;
    } else {
      if (f & PE.LAZY) throw new StasisError('E_UNSUPPORTED', `${name} in ${dir} has lazy pages, which stasis does not restore`);
      continue;
    }
    if (s < last) sorted = false;
    last = s;
    starts[k] = s;
    ends[k] = s + c;
    k++;
  }
  [starts, ends, flags, offs] = [starts.subarray(0, k), ends.subarray(0, k), flags.subarray(0, k), offs.subarray(0, k)];
  if (!sorted) {
    const order = orderBy(starts, k);
    [starts, ends, flags, offs] = [permuted(starts, order), permuted(ends, order), permuted(flags, order), permuted(offs, order)];
  }
  const size = fs.existsSync(pagesPath) ? fs.statSync(pagesPath).size : -1;
  if (size < 0 && bytes > 0) throw new StasisError('E_NO_IMAGE', `No ${pagesPath}, which ${name} needs`);
  if (size >= 0 && size !== bytes) throw new StasisError('E_TRUNCATED', `${pagesPath} holds ${size} bytes; ${name} lists ${bytes}`);
  for (let i = 1; i < starts.length; i++) {
    if (starts[i]! < ends[i - 1]!) throw new StasisError('E_CORRUPT', `${name} in ${dir} lists page 0x${(starts[i]! * PAGE).toString(16)} twice`);
  }
  return { dir, pagesPath, depth, reads: new PageList(starts.length), parent: undefined, starts, ends, flags, offs };
}

/** Resolves [s, e) in `lv` into reads; `seen` guards against link loops. */
function resolve(lv: Level, m: PagemapName, s: number, e: number, seen: Set<string>): void {
  // First entry that ends after s.
  let lo = 0, hi = lv.ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (lv.ends[mid]! <= s) lo = mid + 1;
    else hi = mid;
  }
  let at = s;
  for (let i = lo; at < e; i++) {
    if (i >= lv.starts.length || lv.starts[i]! > at) {
      throw new StasisError('E_CORRUPT', `Page 0x${(at * PAGE).toString(16)} of ${fileName(m)} is in_parent, but ${lv.dir} does not have it`);
    }
    const stop = Math.min(e, lv.ends[i]!);
    if (lv.flags[i] === PE.PRESENT) {
      lv.reads.push(at, stop - at, lv.offs[i]! + (at - lv.starts[i]!) * PAGE);
    } else {
      if (lv.parent === undefined) {
        const link = path.join(lv.dir, 'parent');
        if (!fs.existsSync(link)) throw new StasisError('E_NO_IMAGE', `${fileName(m)} in ${lv.dir} has in_parent pages, but ${lv.dir} has no parent link`);
        lv.parent = openLevel(link, m, lv.depth + 1, seen);
      }
      resolve(lv.parent!, m, at, stop, seen);
    }
    at = stop;
  }
}

/** The pages of a task (pagemap-PID.img) along the chain, less those of `drop` (resolvePages). */
export function resolveTaskPages(dir: string, pid: number, drop: readonly { start: bigint; end: bigint }[] = []): TaskPages {
  return resolvePages(dir, { kind: 'pagemap', id: pid }, drop);
}

/**
 * Every page with data in `m` of the set in `dir`, and where each is stored along the chain,
 * less the pages of `drop`: CRIU dumps the vDSO's pages (its restore compares them with the
 * running kernel's vDSO), which stasis never writes back, since the kernel maps the vDSO itself.
 * One pass in page numbers over the entries, which are sorted, as `drop` is made: a holey area
 * of 1 GiB has thousands of them, and this runs before a lazy restore's task can.
 */
export function resolvePages(dir: string, m: PagemapName, drop: readonly { start: bigint; end: bigint }[] = []): TaskPages {
  const seen = new Set<string>();
  const top = openLevel(dir, m, 0, seen);
  const cut = [...drop].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
    .map((d) => ({ s: Number(d.start / BigInt(PAGE)), e: Number((d.end + BigInt(PAGE - 1)) / BigInt(PAGE)) }));
  const runs = new PageList(top.starts.length);
  let lastEnd = -1, j = 0;
  const take = (i: number, s: number, e: number) => {
    if (s === lastEnd) runs.count[runs.n - 1]! += e - s;
    else runs.push(s, e - s);
    lastEnd = e;
    if (top.flags[i] === PE.PRESENT) top.reads.push(s, e - s, top.offs[i]! + (s - top.starts[i]!) * PAGE);
    else resolve(top, m, s, e, seen);
  };
  for (let i = 0; i < top.starts.length; i++) {
    let s = top.starts[i]!;
    const e = top.ends[i]!;
    while (j < cut.length && cut[j]!.e <= s) j++;
    // The ranges of `drop` that meet [s, e), from the first that ends after s.
    for (let k = j; k < cut.length && cut[k]!.s < e && s < e; k++) {
      if (cut[k]!.s > s) take(i, s, cut[k]!.s);
      s = Math.max(s, cut[k]!.e);
    }
    if (s < e) take(i, s, e);
  }
  const sources: PageSource[] = [];
  for (let lv: Level | null | undefined = top; lv; lv = lv.parent) {
    if (lv.reads.n) sources.push({ path: lv.pagesPath, reads: sortedByOffset(lv.reads.done()) });
  }
  const r = runs.done();
  return { runs: { n: r.n, page: r.page, count: r.count }, sources };
}
