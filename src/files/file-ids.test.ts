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

test('FileIds.genid() keeps dev, ino and pos apart where XOR would fold them together', () => {
  // 5 ^ 3 === 6 ^ 0: two different files that XOR would send to one kcmp list.
  assert.notEqual(FileIds.genid(1n, 5n, 3n), FileIds.genid(1n, 6n, 0n));
  assert.equal(FileIds.genid(1n, 5n, 3n), FileIds.genid(1n, 5n, 3n));
});

test('FileIds tells apart objects of several tasks through one kcmp-ordered list', () => {
  // Objects by (pid, fd): two tasks share object 30 (fork); each has one of its own.
  const obj = new Map([['1:3', 30], ['2:3', 30], ['1:4', 10], ['2:4', 50]]);
  const ids = new FileIds((p1, p2, f1, f2) => {
    const a = obj.get(`${p1}:${f1}`)!, b = obj.get(`${p2}:${f2}`)!;
    return a === b ? 0 : a < b ? 1 : 2;
  });
  const got = [[1, 3], [1, 4], [2, 4], [2, 3]].map(([p, f]) => ids.lookup(7n, p!, f!));
  assert.deepEqual(got.map((r) => r.isNew), [true, true, true, false]);
  assert.equal(got[3]!.id, got[0]!.id);
  assert.equal(new Set(got.map((r) => r.id)).size, 3);
});
