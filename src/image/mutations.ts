// Test helper: edits of valid images for the fuzz tests (the decoder's, src/image/fuzz.test.ts,
// and the restore's, test/cr/engine/fuzz-restore.test.ts): flipped, overwritten, inserted
// and deleted bytes, cuts and appended garbage.
import fc from 'fast-check';

export const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

export type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

/** Applies the edits in order (positions wrap around the current length). */
export function mutate(bytes: Uint8Array, edits: Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const e of edits) {
    if (e.op === 'append') {
      b = Buffer.concat([b, e.bytes]);
      continue;
    }
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.op === 'flip') b[at] = (b[at] as number) ^ (1 << e.bit);
    else if (e.op === 'set') b[at] = e.value;
    else if (e.op === 'insert') b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
    else if (e.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.count)]);
    else b = Buffer.from(b.subarray(0, at));
  }
  return b;
}
