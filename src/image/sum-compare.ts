// The chunk size of version 3 sums and their comparison, with no imports: the lazy filler's
// thread loads this alone, not the image codec and its generated messages (about 200 KB of
// JavaScript it never runs, parsed while the first restored task waits for it; issue 15).
import type { FileSum } from './image-sums.js';

/** Version 3: the bytes each CRC-32 of an entry's `chunks` covers (the last chunk may be shorter). */
export const SUM_CHUNK = 1 << 20;

/** Where a file's CRC-32s differ from its entry's (null: they match): the bytes of the first chunk that differs, or the whole file. */
export function sumMismatch(want: FileSum, got: FileSum): string | null {
  if (want.chunks !== undefined) {
    if (got.chunks === want.chunks) return null;
    const g = got.chunks ?? '';
    let i = 0;
    while (i * 8 < want.chunks.length && g.slice(i * 8, i * 8 + 8) === want.chunks.slice(i * 8, i * 8 + 8)) i++;
    return `its CRC-32 of bytes ${i * SUM_CHUNK}-${Math.min((i + 1) * SUM_CHUNK, want.size)} differs from the one written with it`;
  }
  return got.crc32 === want.crc32 ? null : 'its CRC-32 differs from the one written with it';
}
