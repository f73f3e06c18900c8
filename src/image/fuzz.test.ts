import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StasisError } from '../errors.js';
import { decodeAnyImage, decodeImage, encodeImage } from './codec.js';
import { IMAGE_KINDS, type FramedKindName, type ImageContent } from './image-kinds.js';
import { sampleFlatGhostFile, sampleImages } from './sample-images.js';
import { mutation, mutate } from './mutations.js';

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
