import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StasisError } from '../errors.js';
import { decodeAnyImage, decodeImage, encodeImage } from './codec.js';
import { IMAGE_KINDS, type FramedKindName, type ImageContent } from './image-kinds.js';
import { sampleFlatGhostFile, sampleImages } from './sample-images.js';

const FRAMED = (Object.keys(IMAGE_KINDS) as (keyof typeof IMAGE_KINDS)[])
  .filter((k): k is FramedKindName => IMAGE_KINDS[k].layout !== 'raw');

const samples = sampleImages();
const VALID: [FramedKindName, Uint8Array][] = [
  ...FRAMED.map((k): [FramedKindName, Uint8Array] => [k, encodeImage(k, samples[k].content as ImageContent<typeof k>)]),
  ['ghost-file', encodeImage('ghost-file', sampleFlatGhostFile())],
];

const DECODE_CODES = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_BAD_MAGIC']);

/** Decodes and requires that any failure is a StasisError with a decoding code. */
function decodeOnlyFailsCleanly(kind: FramedKindName, bytes: Uint8Array): void {
  for (const decode of [() => decodeImage(kind, bytes), () => decodeAnyImage(bytes, { fileName: 'fuzz.img' })]) {
    try {
      decode();
    } catch (err) {
      if (!(err instanceof StasisError)) throw err;
      assert.ok(DECODE_CODES.has(err.code), `unexpected code ${err.code}: ${err.message}`);
    }
  }
}

const kind = fc.constantFrom(...FRAMED);
const valid = fc.constantFrom(...VALID);

/** An edit of a valid image: flipped, overwritten, inserted or deleted bytes. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(bytes: Uint8Array, edits: Mutation[]): Uint8Array {
  let b = Uint8Array.from(bytes);
  for (const e of edits) {
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.op === 'flip') b[at] = (b[at] as number) ^ (1 << e.bit);
    else if (e.op === 'set') b[at] = e.value;
    else if (e.op === 'insert') b = Uint8Array.from([...b.subarray(0, at), ...e.bytes, ...b.subarray(at)]);
    else b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + e.count)]);
  }
  return b;
}

test('decodeImage() only ever throws StasisError on random bytes', () => {
  fc.assert(fc.property(kind, fc.uint8Array({ maxLength: 256 }), (k, bytes) => decodeOnlyFailsCleanly(k, bytes)),
    { numRuns: 2000 });
});

test('decodeImage() only ever throws StasisError on random entries behind a valid header', () => {
  fc.assert(fc.property(valid, fc.uint8Array({ maxLength: 256 }), ([k, good], tail) => {
    const header = good.subarray(0, IMAGE_KINDS[k].head === 'none' ? 4 : 8);
    decodeOnlyFailsCleanly(k, Uint8Array.from([...header, ...tail]));
  }), { numRuns: 2000 });
});

test('decodeImage() only ever throws StasisError on mutated valid images', () => {
  fc.assert(fc.property(valid, fc.array(mutation, { minLength: 1, maxLength: 6 }), ([k, good], edits) => {
    decodeOnlyFailsCleanly(k, mutate(good, edits));
  }), { numRuns: 3000 });
});
