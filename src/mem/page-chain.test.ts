import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { imagePath, PE } from '../image/index.js';
import { writePagemapImage, type PagemapItem } from '../image/pagemap-writer.js';
import { resolveTaskPages } from './page-chain.js';
import { readObjects, runObjects } from './page-list.js';

const PAGE = 4096, PID = 7;

/** A level's entries: runs of pages in address order, each PRESENT or in the parent. */
const level = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 3 }), n: fc.integer({ min: 1, max: 5 }), parent: fc.boolean() }), { maxLength: 12 });
const drops = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 6 }), n: fc.integer({ min: 1, max: 4 }) }), { maxLength: 4 });

/** Lays runs out from page 16 on: [first page, pages, in parent]. */
function layout(runs: { gap: number; n: number; parent?: boolean }[]): [number, number, boolean][] {
  let at = 16;
  return runs.map((r) => {
    const s = at + r.gap;
    at = s + r.n;
    return [s, r.n, r.parent ?? false];
  });
}

function writeLevel(dir: string, runs: [number, number, boolean][]): void {
  fs.mkdirSync(dir, { recursive: true });
  const items: PagemapItem[] = runs.map(([s, n, p]) => ({ vaddr: BigInt(s * PAGE), nrPages: n, flags: p ? PE.PARENT : PE.PRESENT }));
  writePagemapImage(dir, PID, 1, items);
  const bytes = runs.filter(([, , p]) => !p).reduce((a, [, n]) => a + n * PAGE, 0);
  fs.writeFileSync(imagePath(dir, 'pages', 1), Buffer.alloc(bytes));
}

test('resolveTaskPages() finds each page with data where the chain stores it, page by page as a plain model does, less the ranges dropped', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-chain-'));
  let n = 0;
  try {
    fc.assert(fc.property(level, drops, fc.boolean(), (topRuns, dropRuns, backwards) => {
      const dir = path.join(base, String(n++)), parentDir = path.join(dir, 'p');
      // The parent holds every page (present); the top's entries in the parent point there.
      // Entries out of address order too (the offsets follow the file's order, as the model's).
      const top = backwards ? layout(topRuns).reverse() : layout(topRuns);
      const parent: [number, number, boolean][] = top.filter(([, , p]) => p).map(([s, c]) => [s, c, false]);
      writeLevel(parentDir, parent);
      writeLevel(dir, top);
      fs.symlinkSync('p', path.join(dir, 'parent'));
      const drop = layout(dropRuns).map(([s, c]) => ({ start: BigInt(s * PAGE), end: BigInt((s + c) * PAGE) }));
      const dropped = (pg: number) => drop.some((d) => BigInt(pg * PAGE) >= d.start && BigInt(pg * PAGE) < d.end);
      // The model: page -> [file, offset].
      const want = new Map<number, string>();
      const offsetIn = (runs: [number, number, boolean][], pg: number) => {
        let off = 0;
        for (const [s, c, p] of runs) {
          if (pg >= s && pg < s + c) return p ? -1 : off + (pg - s) * PAGE;
          if (!p) off += c * PAGE;
        }
        throw new Error('not in the level');
      };
      for (const [s, c, p] of top) {
        for (let pg = s; pg < s + c; pg++) {
          if (dropped(pg)) continue;
          want.set(pg, p ? `${imagePath(path.join(dir, 'parent'), 'pages', 1)}@${offsetIn(parent, pg)}` : `${imagePath(dir, 'pages', 1)}@${offsetIn(top, pg)}`);
        }
      }
      const got = resolveTaskPages(dir, PID, drop);
      const runsPages = new Set<number>();
      let last = -1;
      for (const r of runObjects(got.runs)) {
        const s = Number(r.vaddr) / PAGE;
        assert.ok(s > last, 'runs in address order, apart');
        for (let pg = s; pg < s + r.nrPages; pg++) runsPages.add(pg);
        last = s + r.nrPages;
      }
      assert.deepEqual([...runsPages].sort((a, b) => a - b), [...want.keys()].sort((a, b) => a - b));
      const seen = new Map<number, string>();
      for (const src of got.sources) {
        const reads = readObjects(src.reads);
        for (let i = 1; i < reads.length; i++) assert.ok(reads[i]!.off > reads[i - 1]!.off, 'reads sorted by offset');
        for (const r of reads) {
          for (let k = 0; k < r.nrPages; k++) {
            const pg = Number(r.vaddr) / PAGE + k;
            assert.ok(!seen.has(pg), `page ${pg} read twice`);
            seen.set(pg, `${src.path}@${r.off + k * PAGE}`);
          }
        }
      }
      assert.deepEqual(new Map([...seen].sort((a, b) => a[0] - b[0])), new Map([...want].sort((a, b) => a[0] - b[0])));
    }), { numRuns: 150 });
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
