// A pagemap entry decoded without the generic protobuf reader: a dump of a big, holey area has
// tens of thousands of them, and fromBinary() took about 7 µs each (60 ms for 1 GiB in 8,000
// runs, every one before a restored tree can run; issue 15). Only the wire shape stasis and
// CRIU write (fields 1-5, varints, in any order) is taken here; anything else (an unknown
// field, another wire type, a vaddr past 2^53) gives undefined, and the caller decodes the
// entry the generic way, so the result is the same message either way.
import { create } from '@bufbuild/protobuf';
import { PagemapEntrySchema, type PagemapEntry } from './gen/stasis/pagemap_pb.js';
import { PE } from './pagemap-flags.js';
import { doubled } from '../float-arrays.js';

/** The fields of the entry in `b[at, end)` (-1: absent), or undefined where the generic decoder must decide. */
function readFields(b: Uint8Array, at: number, end: number): { vaddr: number; compat: number; inParent: number; flags: number; nr: number } | undefined {
  const f = { vaddr: -1, compat: -1, inParent: -1, flags: -1, nr: -1 };
  let i = at;
  while (i < end) {
    const tag = b[i++]!;
    if ((tag & 7) !== 0 || tag > 0x7f) return undefined; // varints only, field numbers 1-15
    // A varint of up to 8 bytes (56 bits) read exactly into a double; longer ones go the generic way.
    let v = 0, mul = 1, n = 0;
    for (;;) {
      if (i >= end || n === 8) return undefined;
      const x = b[i++]!;
      v += (x & 0x7f) * mul;
      mul *= 128;
      n++;
      if (x < 0x80) break;
    }
    if (v > Number.MAX_SAFE_INTEGER) return undefined;
    switch (tag >> 3) {
      case 1: f.vaddr = v; break;
      case 2: if (v > 0xffffffff) return undefined; f.compat = v; break;
      case 3: f.inParent = v !== 0 ? 1 : 0; break;
      case 4: if (v > 0xffffffff) return undefined; f.flags = v; break;
      case 5: f.nr = v; break;
      default: return undefined;
    }
  }
  return i === end && f.vaddr >= 0 && f.compat >= 0 ? f : undefined;
}

/** The entry in `b[at, end)`, or undefined where the generic decoder must decide. */
export function decodePagemapEntry(b: Uint8Array, at: number, end: number): PagemapEntry | undefined {
  const f = readFields(b, at, end);
  if (!f) return undefined;
  return create(PagemapEntrySchema, {
    vaddr: BigInt(f.vaddr), compatNrPages: f.compat, ...(f.inParent >= 0 ? { inParent: f.inParent === 1 } : {}),
    ...(f.flags >= 0 ? { flags: f.flags } : {}), ...(f.nr >= 0 ? { nrPages: BigInt(f.nr) } : {}),
  });
}

/**
 * A pagemap's entries as numbers (page index, count, flags), normalised as the kind's compat
 * step does (in_parent: PE_PARENT; no flags: PE_PRESENT; no nr_pages: the 32-bit count),
 * with no message made for them: what a restore needs of a pagemap of tens of thousands of
 * entries. An entry the fast reader does not take is decoded by `generic` (which refuses
 * what is damaged), so the result is the same either way.
 */
export interface PagemapRuns {
  n: number;
  page: Float64Array;
  count: Float64Array;
  flags: Float64Array;
}


/** Reads the entries of `b` from `off` (framed: a 32-bit size, then the entry); `generic(at)` decodes the one at `at` and tells where the next starts. */
export function decodePagemapRuns(
  b: Uint8Array, off: number, maxEntrySize: number,
  generic: (at: number) => { next: number; vaddr: bigint; nrPages: number; flags: number },
): PagemapRuns {
  // One loop, no object per entry (it runs cold, before a lazily restored tree can run): the
  // entry's fields straight into locals, then into typed arrays (pushing onto arrays cost about
  // a fifth more); anything the fast path does not take, `generic`. An entry takes 8 bytes at
  // least (its size, and its two required fields), so that many slots do, unless generic()
  // takes a smaller one.
  const cap = Math.max(16, Math.ceil((b.length - off) / 8));
  let page = new Float64Array(cap), count = new Float64Array(cap), flags = new Float64Array(cap);
  let n = 0;
  while (off < b.length) {
    let next = -1, vaddr = -1, compat = -1, inParent = -1, fl = -1, nr = -1;
    if (off + 4 <= b.length) {
      const size = (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16)) + b[off + 3]! * 0x1000000;
      const end = off + 4 + size;
      let i = off + 4, ok = size > 0 && end <= b.length && size <= maxEntrySize;
      while (ok && i < end) {
        const tag = b[i++]!;
        if ((tag & 7) !== 0 || tag > 0x7f) { ok = false; break; } // varints only, field numbers 1-15
        // A varint of up to 8 bytes (56 bits) read exactly into a double; longer ones go the generic way.
        let v = 0, mul = 1, k = 0;
        for (;;) {
          if (i >= end || k === 8) { ok = false; break; }
          const x = b[i++]!;
          v += (x & 0x7f) * mul;
          mul *= 128;
          k++;
          if (x < 0x80) break;
        }
        if (!ok || v > Number.MAX_SAFE_INTEGER) { ok = false; break; }
        const field = tag >> 3;
        if (field === 1) vaddr = v;
        else if (field === 2 && v <= 0xffffffff) compat = v;
        else if (field === 3) inParent = v !== 0 ? 1 : 0;
        else if (field === 4 && v <= 0xffffffff) fl = v;
        else if (field === 5) nr = v;
        else { ok = false; break; }
      }
      if (ok && i === end && vaddr >= 0 && compat >= 0) next = end;
    }
    let f: number, c: number;
    if (next >= 0) {
      f = fl < 0 ? 0 : fl;
      if (inParent === 1) f |= PE.PARENT;
      else if (fl < 0) f = PE.PRESENT;
      f >>>= 0;
      c = nr < 0 ? compat : nr;
      off = next;
    } else {
      const g = generic(off);
      // Past 2^53: no user address is; kept exact for the caller's own checks to refuse.
      vaddr = g.vaddr > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(g.vaddr);
      c = g.nrPages;
      f = g.flags;
      off = g.next;
    }
    if (n === page.length) [page, count, flags] = [doubled(page), doubled(count), doubled(flags)];
    // An unaligned address is kept as a fraction, for the caller to refuse.
    page[n] = vaddr / 4096;
    count[n] = c;
    flags[n] = f;
    n++;
  }
  return { n, page: page.subarray(0, n), count: count.subarray(0, n), flags: flags.subarray(0, n) };
}
