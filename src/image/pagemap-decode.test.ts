import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import { PagemapEntrySchema, type PagemapEntry } from './gen/stasis/pagemap_pb.js';
import { decodePagemapEntry } from './pagemap-decode.js';

const FIELDS = ['vaddr', 'compatNrPages', 'inParent', 'flags', 'nrPages'] as const;

function same(bytes: Uint8Array): PagemapEntry | undefined {
  const fast = decodePagemapEntry(bytes, 0, bytes.length);
  if (!fast) return undefined;
  const slow = fromBinary(PagemapEntrySchema, bytes);
  assert.deepEqual(fast, slow);
  for (const f of FIELDS) assert.equal(isFieldSet(fast, PagemapEntrySchema.field[f]), isFieldSet(slow, PagemapEntrySchema.field[f]), f);
  return fast;
}

test('decodePagemapEntry() gives the message fromBinary() gives, field presence included, for what stasis and CRIU write', () => {
  const cases = [
    { vaddr: 0x7f0000001000n, compatNrPages: 3, nrPages: 3n, flags: 4 },
    { vaddr: 0x1000n, compatNrPages: 0, nrPages: 0x1_0000_0001n, flags: 1 },
    { vaddr: 0x7ffffffff000n, compatNrPages: 1, inParent: true },
    { vaddr: 0n, compatNrPages: 7 },
    { vaddr: 0x55aa00000000n, compatNrPages: 0xffffffff, flags: 0 },
  ];
  for (const c of cases) assert.ok(same(toBinary(PagemapEntrySchema, create(PagemapEntrySchema, c))), JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? `${v}` : v)));
});

test('decodePagemapEntry() leaves to fromBinary() an unknown field, a missing required one, a vaddr past 2^53 and a torn varint', () => {
  const e = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x1000n, compatNrPages: 1 }));
  assert.equal(decodePagemapEntry(Uint8Array.from([...e, 0x30, 0x01]), 0, e.length + 2), undefined); // field 6
  assert.equal(decodePagemapEntry(Uint8Array.from([...e, 0x0a, 0x00]), 0, e.length + 2), undefined); // field 1 as bytes
  const noCount = Uint8Array.from([0x08, 0x80, 0x20]); // vaddr 0x1000 alone
  assert.equal(decodePagemapEntry(noCount, 0, noCount.length), undefined);
  const big = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 1n << 60n, compatNrPages: 1 }));
  assert.equal(decodePagemapEntry(big, 0, big.length), undefined);
  assert.equal(decodePagemapEntry(e, 0, e.length - 1), undefined);
});
