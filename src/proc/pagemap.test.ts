import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PM_FILE,
  PM_MMAP_EXCLUSIVE,
  PM_PRESENT,
  PM_SOFT_DIRTY,
  PM_SWAP,
  entryPfn,
  isFilePage,
  isPresent,
  isSoftDirty,
  isSwapped,
  pagemapEntry,
  scanPagemap,
} from './pagemap.js';

// Entries read on Linux 6.18 as root: a written anonymous page, a page only read (the
// shared zero page, PFN 0x3b34 on that machine), a page of /etc/passwd, an untouched page.
const ANON = 0x810000000011e4b2n;
const ZERO = 0x8000000000003b34n;
const FILE_PAGE = 0xa10000000011395fn;
const NONE = 0n;
const ZERO_PFN = 0x3b34n;
// Swap type 1, offset 0x5f: not on the capture machine, which had no swap.
const SWAPPED = PM_SWAP | (0x5fn << 5n) | 1n;

const BASE = 0x7f0000000000n;
const PAGE = 4096;

function entries(...e: bigint[]): Buffer {
  const buf = Buffer.alloc(e.length * 8);
  e.forEach((v, i) => buf.writeBigUInt64LE(v, i * 8));
  return buf;
}

const at = (page: number) => BASE + BigInt(page * PAGE);

test('scanPagemap() merges consecutive present pages into one run', () => {
  const runs = scanPagemap(entries(NONE, ANON, ANON, ANON, NONE, ANON), BASE, PAGE, ZERO_PFN);
  assert.deepEqual(runs, [{ vaddr: at(1), nrPages: 3 }, { vaddr: at(5), nrPages: 1 }]);
});

test('scanPagemap() skips the zero page', () => {
  const runs = scanPagemap(entries(ANON, ZERO, ANON, ZERO, ZERO), BASE, PAGE, ZERO_PFN);
  assert.deepEqual(runs, [{ vaddr: at(0), nrPages: 1 }, { vaddr: at(2), nrPages: 1 }]);
});

test('scanPagemap() dumps the zero page when PFNs are hidden', () => {
  const hidden = ZERO & ~((1n << 55n) - 1n);
  assert.deepEqual(scanPagemap(entries(ANON, hidden), BASE, PAGE, null), [{ vaddr: at(0), nrPages: 2 }]);
  assert.throws(() => scanPagemap(entries(ANON), BASE, PAGE, 0n), /pass null/);
});

test('scanPagemap() compares all 55 bits of the PFN, above 2^32 too', () => {
  const highZero = (1n << 40n) | ZERO_PFN;
  const runs = scanPagemap(entries(ZERO, PM_PRESENT | highZero, PM_PRESENT | (1n << 54n) | ZERO_PFN), BASE, PAGE, highZero);
  assert.deepEqual(runs, [{ vaddr: at(0), nrPages: 1 }, { vaddr: at(2), nrPages: 1 }]);
});

test('scanPagemap() keeps swapped pages, even one whose swap entry looks like the zero PFN', () => {
  const lookalike = PM_SWAP | ZERO_PFN;
  const runs = scanPagemap(entries(SWAPPED, ANON, NONE, lookalike), BASE, PAGE, ZERO_PFN);
  assert.deepEqual(runs, [{ vaddr: at(0), nrPages: 2 }, { vaddr: at(3), nrPages: 1 }]);
});

test('scanPagemap() leaves out file pages of a private file mapping when asked', () => {
  const buf = entries(FILE_PAGE, ANON, FILE_PAGE);
  assert.deepEqual(scanPagemap(buf, BASE, PAGE, ZERO_PFN), [{ vaddr: at(0), nrPages: 3 }]);
  assert.deepEqual(scanPagemap(buf, BASE, PAGE, ZERO_PFN, { excludeFile: true }), [{ vaddr: at(1), nrPages: 1 }]);
});

test('scanPagemap() keeps only soft-dirty pages when asked', () => {
  const buf = entries(ANON | PM_SOFT_DIRTY, ANON, SWAPPED | PM_SOFT_DIRTY, ANON | PM_SOFT_DIRTY);
  assert.deepEqual(scanPagemap(buf, BASE, PAGE, ZERO_PFN, { softDirtyOnly: true }), [{ vaddr: at(0), nrPages: 1 }, { vaddr: at(2), nrPages: 2 }]);
});

test('scanPagemap() reports runs at addresses above 2^53', () => {
  const base = 0xffffffffff600000n;
  assert.deepEqual(scanPagemap(entries(NONE, ANON), base, PAGE, ZERO_PFN), [{ vaddr: base + 4096n, nrPages: 1 }]);
});

test('scanPagemap() reads a buffer that is not 4-byte aligned', () => {
  const src = entries(ANON, ZERO, ANON, ANON);
  const odd = Buffer.concat([Buffer.alloc(1), src]).subarray(1);
  assert.notEqual(odd.byteOffset % 4, 0);
  assert.deepEqual(scanPagemap(odd, BASE, PAGE, ZERO_PFN), scanPagemap(src, BASE, PAGE, ZERO_PFN));
});

test('scanPagemap() of no entries or no data gives no runs', () => {
  assert.deepEqual(scanPagemap(Buffer.alloc(0), BASE, PAGE, ZERO_PFN), []);
  assert.deepEqual(scanPagemap(Buffer.alloc(8 * 1024), BASE, PAGE, ZERO_PFN), []);
  assert.throws(() => scanPagemap(Buffer.alloc(12), BASE, PAGE, ZERO_PFN), RangeError);
});

test('scanPagemap() scans 262,144 entries, a GiB of address space, in one run', () => {
  const n = 262144;
  const buf = Buffer.alloc(n * 8);
  for (let i = 0; i < n; i++) buf.writeBigUInt64LE(ANON, i * 8);
  assert.deepEqual(scanPagemap(buf, BASE, PAGE, ZERO_PFN), [{ vaddr: BASE, nrPages: n }]);
});

test('the accessors read each flag of an entry', () => {
  const buf = entries(ANON | PM_SOFT_DIRTY, SWAPPED, FILE_PAGE, NONE);
  assert.deepEqual([0, 1, 2, 3].map((i) => isPresent(buf, i)), [true, false, true, false]);
  assert.deepEqual([0, 1, 2, 3].map((i) => isSwapped(buf, i)), [false, true, false, false]);
  assert.deepEqual([0, 1, 2, 3].map((i) => isFilePage(buf, i)), [false, false, true, false]);
  assert.deepEqual([0, 1, 2, 3].map((i) => isSoftDirty(buf, i)), [true, false, false, false]);
  assert.equal(pagemapEntry(buf, 2), FILE_PAGE);
  assert.equal(entryPfn(ANON), 0x11e4b2n);
  assert.equal((ANON & PM_MMAP_EXCLUSIVE) !== 0n, true);
  assert.equal((FILE_PAGE & PM_FILE) !== 0n, true);
});
