import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import { PagemapEntrySchema, PagemapHeadSchema, type PagemapEntry } from './gen/stasis/pagemap_pb.js';
import { decodePagemapEntry } from './pagemap-decode.js';
import { decodeImage, decodePagemapImage, encodeImage } from './codec.js';
import { pagemapCount } from './compat.js';

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

test('decodePagemapImage() gives the numbers decodeImage() gives, normalised, for fast and generic entries alike, and refuses what decodeImage() refuses', () => {
  const entries = [
    { vaddr: 0x7f0000001000n, compatNrPages: 3, nrPages: 3n, flags: 4 },
    { vaddr: 0x7f0000010000n, compatNrPages: 2, inParent: true }, // CRIU before 3.x: PE_PARENT
    { vaddr: 0x7f0000020000n, compatNrPages: 5 }, // no flags: PE_PRESENT
    { vaddr: 0x7f0000030000n, compatNrPages: 0, nrPages: 0x1_0000_0001n, flags: 1 },
    { vaddr: 0x7f0000040000n, compatNrPages: 9, flags: 0 },
  ].map((c) => create(PagemapEntrySchema, c));
  const head = create(PagemapHeadSchema, { pagesId: 7 });
  const bytes = encodeImage('pagemap', { head, entries });
  // An entry with a field the fast reader leaves to the generic one (field 6, kept unknown).
  const plain = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x9000n, compatNrPages: 1, flags: 4 }));
  const odd = Uint8Array.from([...plain, 0x30, 0x01]);
  const frame = new Uint8Array(4 + odd.length);
  new DataView(frame.buffer).setUint32(0, odd.length, true);
  frame.set(odd, 4);
  const all = Uint8Array.from([...bytes, ...frame]);
  const slow = decodeImage('pagemap', all);
  const fast = decodePagemapImage('pagemap', all);
  assert.equal(fast.head.pagesId, 7);
  assert.equal(fast.runs.n, slow.entries.length);
  slow.entries.forEach((e, i) => {
    assert.equal(fast.runs.page[i]! * 4096, Number(e.vaddr), `entry ${i} address`);
    assert.equal(fast.runs.count[i], pagemapCount(e), `entry ${i} count`);
    assert.equal(fast.runs.flags[i], e.flags, `entry ${i} flags`);
  });
  assert.deepEqual([...fast.runs.flags.slice(0, 3)], [4, 1, 4]); // PE_PRESENT, PE_PARENT, PE_PRESENT
  for (const cut of [all.length - 1, bytes.length - 2, 30]) {
    const code = (f: () => unknown) => { try { f(); return 'none'; } catch (e) { return (e as { code?: string }).code; } };
    assert.equal(code(() => decodePagemapImage('pagemap', all.subarray(0, cut))), code(() => decodeImage('pagemap', all.subarray(0, cut))), `cut at ${cut}`);
  }
});
