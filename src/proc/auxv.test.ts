import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { AT_NULL, parseAuxv } from './auxv.js';
import { ProcFormatError } from './proc-format-error.js';

// A test program's auxv on Linux 6.18, x86_64: 22 pairs and AT_NULL.
const AUXV = fs.readFileSync(new URL('../../../src/proc/fixtures/auxv-6.18.bin', import.meta.url));

const AT_PAGESZ = 6n;
const AT_ENTRY = 9n;
const AT_RANDOM = 25n;

test('parseAuxv() returns the flat key, value list ending with the AT_NULL pair', () => {
  const words = parseAuxv(AUXV);
  assert.equal(words.length, AUXV.length / 8);
  assert.equal(words.length, 46);
  assert.deepEqual(words.slice(-2), [AT_NULL, 0n]);
  assert.deepEqual(words.slice(0, 2), [0x21n, 0x7f18e07ce000n]); // AT_SYSINFO_EHDR: the vDSO
});

test('parseAuxv() reads the page size, entry point and AT_RANDOM address', () => {
  const words = parseAuxv(AUXV);
  const get = (key: bigint) => words[words.findIndex((w, i) => i % 2 === 0 && w === key) + 1];
  assert.equal(get(AT_PAGESZ), 4096n);
  assert.equal(get(AT_ENTRY), 0x55ce284ae2c0n);
  assert.equal(get(AT_RANDOM), 0x7fffa94984d9n);
});

test('parseAuxv() reads a buffer that is a slice of a larger one', () => {
  const padded = Buffer.concat([Buffer.alloc(3), AUXV]).subarray(3);
  assert.deepEqual(parseAuxv(padded), parseAuxv(AUXV));
});

test('parseAuxv() of an empty file is an empty list', () => {
  assert.deepEqual(parseAuxv(Buffer.alloc(0)), []);
});

test('parseAuxv() refuses a vector cut short', () => {
  assert.throws(() => parseAuxv(AUXV.subarray(0, AUXV.length - 16)), (err: unknown) => err instanceof ProcFormatError && /no AT_NULL/.test(err.message));
  assert.throws(() => parseAuxv(AUXV.subarray(0, 20)), /16-byte pairs/);
});
