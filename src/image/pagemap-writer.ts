// Pagemap images, the one kind with thousands of entries per task (an incremental dump has
// two per dirty page run): entries are encoded by hand, as protobuf-es would (fields 1, 2, 4,
// 5 in order, varints; the count in both 2 and 5, see pagemap.proto), ~20x faster than generic encoding in a cold process, where this sat
// on the frozen task's downtime. The suite's image checks re-encode every pagemap through
// the generated code and require the same bytes.
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { PagemapHeadSchema } from './gen/stasis/pagemap_pb.js';
import { IMAGE_KINDS, imageFileName } from './image-kinds.js';
import { encodeHeader, frameMessage } from './framing.js';
import { writeFileAtomic } from './image-file.js';

export interface PagemapItem {
  vaddr: bigint;
  nrPages: number;
  flags: number;
}

function varint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** Writes pagemap-PID.img: the head (pages_id), then one PagemapEntry per item. */
export function writePagemapImage(dir: string, pid: number, pagesId: number, items: PagemapItem[]): string {
  const def = IMAGE_KINDS.pagemap;
  const file = path.join(dir, imageFileName('pagemap', pid));
  const head = encodeHeader(def.head, def.magic);
  const headEntry = frameMessage(PagemapHeadSchema, create(PagemapHeadSchema, { pagesId }), path.basename(file), 'head entry');
  // An entry is at most 4 (size) + 1+10 + 1+5 + 1+5 + 1+10 bytes.
  const out = new Uint8Array(head.length + headEntry.length + items.length * 38);
  out.set(head, 0);
  out.set(headEntry, head.length);
  let at = head.length + headEntry.length;
  for (const e of items) {
    const body = at + 4;
    let p = body;
    out[p++] = 0x08;
    p = varint(out, p, Number(e.vaddr));
    out[p++] = 0x10;
    p = varint(out, p, e.nrPages <= 0xffffffff ? e.nrPages : 0);
    out[p++] = 0x20;
    p = varint(out, p, e.flags);
    out[p++] = 0x28;
    p = varint(out, p, e.nrPages);
    new DataView(out.buffer).setUint32(at, p - body, true);
    at = p;
  }
  writeFileAtomic(file, out.subarray(0, at));
  return file;
}
