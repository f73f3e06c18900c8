import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { Worker } from 'node:worker_threads';
import { crc32, crc32CodeAddress, crcWorkerData, CRC32_AT_CODE } from './crc32-code.js';

const data = Buffer.alloc(3 << 20);
for (let i = 0, x = 0x12345678; i < data.length; i++) {
  x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
  data[i] = x & 0xff;
}

test('crc32() gives zlib.crc32 for every length, offset and starting value', () => {
  const lens = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 4095, 4096, 4097, 4111, 8192 + 48, 65536 + 7, 1 << 20, 3 << 20];
  let seed = 0;
  for (const len of lens) {
    for (const off of [0, 1, 8, 15, 4095]) {
      if (off + len > data.length) continue;
      const b = data.subarray(off, off + len);
      seed = (seed * 2654435761 + len) >>> 0;
      assert.equal(crc32(b), zlib.crc32(b), `length ${len} at ${off}`);
      assert.equal(crc32(b, seed), zlib.crc32(b, seed), `length ${len} at ${off} from 0x${seed.toString(16)}`);
    }
  }
  // In pieces, as the sums are made: the same as in one go.
  let c = 0;
  for (let at = 0; at < data.length; at += 12345) c = crc32(data.subarray(at, Math.min(at + 12345, data.length)), c);
  assert.equal(c, zlib.crc32(data));
});

test('crc32() tells damage: one bit flipped anywhere changes it', () => {
  const b = Buffer.from(data.subarray(0, 1 << 16));
  const good = crc32(b);
  for (const at of [0, 17, 4096, 65535]) {
    b[at]! ^= 0x10;
    assert.notEqual(crc32(b), good, `bit flipped at ${at}`);
    b[at]! ^= 0x10;
  }
});

test('CRC32_AT_CODE gives a worker thread the same CRC-32 as zlib, with koffi\'s addon opened by its path or found by require()', async () => {
  // In stasis's own layout the addon is opened by its path, in the workers too.
  assert.ok(crcWorkerData().koffiAt?.endsWith('/koffi.node'), String(crcWorkerData().koffiAt));
  assert.equal(crcWorkerData().crcAt, crc32CodeAddress());
  for (const koffiAt of [crcWorkerData().koffiAt, undefined]) {
    const w = new Worker(`const { workerData, parentPort } = require('node:worker_threads');${CRC32_AT_CODE}
parentPort.postMessage([crc32(Buffer.from(workerData.b), 0), crc32(Buffer.from(workerData.b).subarray(0, 100), 7)]);`,
    { eval: true, workerData: { ...crcWorkerData(), koffiAt, b: data.subarray(0, 1 << 20) } });
    const got = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.deepEqual(got, [zlib.crc32(data.subarray(0, 1 << 20)), zlib.crc32(data.subarray(0, 100), 7)], String(koffiAt));
    await w.terminate();
  }
});
