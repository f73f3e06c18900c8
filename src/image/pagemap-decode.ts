// A pagemap entry decoded without the generic protobuf reader: a dump of a big, holey area has
// tens of thousands of them, and fromBinary() took about 7 µs each (60 ms for 1 GiB in 8,000
// runs, every one before a restored tree can run; issue 15). Only the wire shape stasis and
// CRIU write (fields 1-5, varints, in any order) is taken here; anything else (an unknown
// field, another wire type, a vaddr past 2^53) gives undefined, and the caller decodes the
// entry the generic way, so the result is the same message either way.
import { create } from '@bufbuild/protobuf';
import { PagemapEntrySchema, type PagemapEntry } from './gen/stasis/pagemap_pb.js';

/** The entry in `b[at, end)`, or undefined where the generic decoder must decide. */
export function decodePagemapEntry(b: Uint8Array, at: number, end: number): PagemapEntry | undefined {
  const init: { vaddr?: bigint; compatNrPages?: number; inParent?: boolean; flags?: number; nrPages?: bigint } = {};
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
      case 1: init.vaddr = BigInt(v); break;
      case 2: if (v > 0xffffffff) return undefined; init.compatNrPages = v; break;
      case 3: init.inParent = v !== 0; break;
      case 4: if (v > 0xffffffff) return undefined; init.flags = v; break;
      case 5: init.nrPages = BigInt(v); break;
      default: return undefined;
    }
  }
  if (i !== end || init.vaddr === undefined || init.compatNrPages === undefined) return undefined;
  return create(PagemapEntrySchema, init);
}
