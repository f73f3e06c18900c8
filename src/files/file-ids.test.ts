import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileIds } from './file-ids.js';

// A fake kcmp over "kernel pointers": fd -> object address.
function fakeKcmp(objects: Map<number, number>) {
  return (_p1: number, _p2: number, f1: number, f2: number) => {
    const a = objects.get(f1) ?? 0, b = objects.get(f2) ?? 0;
    return a === b ? 0 : a < b ? 1 : 2;
  };
}

test('FileIds makes no kcmp call when generic ids all differ', () => {
  const ids = new FileIds(() => assert.fail('kcmp called'));
  for (let fd = 0; fd < 100; fd++) assert.equal(ids.lookup(BigInt(fd), 1, fd).isNew, true);
  assert.equal(ids.kcmpCalls, 0);
});

test('FileIds gives dup\'d fds one id and colliding distinct files their own, in log2(n) calls each', () => {
  const objects = new Map<number, number>();
  for (let fd = 0; fd < 1024; fd++) objects.set(fd, (fd % 256) * 7919); // 256 objects, 4 fds each
  const ids = new FileIds(fakeKcmp(objects));
  const got = new Map<number, number>();
  for (let fd = 0; fd < 1024; fd++) got.set(fd, ids.lookup(42n, 1, fd).id);
  for (let fd = 256; fd < 1024; fd++) assert.equal(got.get(fd), got.get(fd % 256));
  assert.equal(new Set(got.values()).size, 256);
  assert.ok(ids.kcmpCalls <= 1024 * Math.ceil(Math.log2(256) + 1), `${ids.kcmpCalls} kcmp calls`);
});
