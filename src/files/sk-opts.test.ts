import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFilterInsn, decodeFilterInsn } from './sk-opts.js';

test('a socket filter instruction is kept as CRIU keeps it (code << 48 | jt << 40 | jf << 32 | k), and back', () => {
  // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }: jeq #0x800, jt 0, jf 4 (words of CRIU 4.2's image of zdtm sock_filter00).
  const insn = Buffer.from([0x15, 0x00, 0x00, 0x04, 0x00, 0x08, 0x00, 0x00]);
  assert.equal(encodeFilterInsn(insn), 5910991690795008n);
  assert.deepEqual(decodeFilterInsn(5910991690795008n), insn);
  const jumps = Buffer.from([0x15, 0x00, 0x06, 0x07, 0x01, 0x00, 0x00, 0x7f]); // jeq #0x7f000001, jt 6, jf 7
  assert.equal(encodeFilterInsn(jumps), 5917603776167937n);
  assert.deepEqual(decodeFilterInsn(encodeFilterInsn(jumps)), jumps);
});
