// A memfd mapped private: its pages not copied yet are the memfd's after restore (a write to
// the memfd shows through them), those it copied are its own, shared copy-on-write with a
// child again; shared anonymous memory open as a file and mapped private is one object again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, waitFor, pageFrame } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

const MAP_PRIVATE = 2, FILE_PRIVATE = 1 << 6, ANON_SHARED = 1 << 8, MEMFD = 1 << 14;

test('a memfd mapped private shows the memfd through the pages it did not copy, keeps those it did, shared with its child', async () => {
  const w = new Workload('memfd-priv', compileWorkload('memfd-priv')).start();
  const [s, p, r] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((a) => BigInt(`0x${a}`));
  const child = waitFor('the child', () => Number(fs.readFileSync(`/proc/${w.pid}/task/${w.pid}/children`, 'utf8').trim()));
  const { images } = await checkpointRestore(w);
  const vmas = readImage(images, 'mm', w.pid)[0]!.vmas;
  const at = (a: bigint | undefined) => vmas.find((v) => v.start === a)!;
  for (const a of [p, r]) {
    assert.equal(at(a).flags & 3, MAP_PRIVATE);
    assert.equal(at(a).status & (FILE_PRIVATE | MEMFD), FILE_PRIVATE | MEMFD);
  }
  // One memfd: the private mappings name the file entry the shared one names.
  assert.equal(at(p).shmid, at(s).shmid);
  assert.equal(readImage(images, 'memfd-inode', undefined).length, 1);
  // The private copy of page 1 is in the task's pages, not the memfd's.
  const pm = readImage(images, 'pagemap', w.pid).entries;
  assert.ok(pm.some((e) => e.vaddr <= p! + 4096n && p! + 4096n < e.vaddr + BigInt(e.nrPages) * 4096n), 'the private copy is not in the pagemap');
  assert.ok(!pm.some((e) => e.vaddr <= p! && p! < e.vaddr + BigInt(e.nrPages) * 4096n), 'a page the mapping did not copy is in the pagemap');
  const maps = fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8');
  assert.match(maps, new RegExp(`^${p!.toString(16)}-\\S+ rw-p 00000000 .*/memfd:priv \\(deleted\\)$`, 'm'));
  assert.match(maps, new RegExp(`^${r!.toString(16)}-\\S+ r--p 00002000 .*/memfd:priv \\(deleted\\)$`, 'm'));
  assert.notEqual(pageFrame(w.pid, p! + 4096n), 0n);
  assert.equal(pageFrame(child, p! + 4096n), pageFrame(w.pid, p! + 4096n), 'the copy is not shared copy-on-write with the child');
  w.go();
  assertPassed(w.finish());
});

test('shared anonymous memory open as a file and mapped private comes back one object of its size, shared with the fd', async () => {
  const w = new Workload('shmem-fd', compileWorkload('shmem-fd')).start();
  const [s, p] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((a) => BigInt(`0x${a}`));
  const { images } = await checkpointRestore(w);
  const vmas = readImage(images, 'mm', w.pid)[0]!.vmas;
  const priv = vmas.find((v) => v.start === p)!, shared = vmas.find((v) => v.start === s)!;
  assert.equal(priv.flags & 3, MAP_PRIVATE);
  assert.equal(priv.status & (FILE_PRIVATE | ANON_SHARED), FILE_PRIVATE | ANON_SHARED);
  assert.equal(priv.shmid, shared.shmid, 'the private mapping names the object the shared one maps');
  // The object has an inode entry (its fd names it) with its own size, 5 pages: not the 6 its mappings reach.
  const inodes = readImage(images, 'memfd-inode', undefined);
  assert.deepEqual(inodes.map((i) => [i.name, i.size, BigInt(i.shmid)]), [['/dev/zero', 5n * 4096n, shared.shmid]]);
  const maps = fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8');
  assert.match(maps, new RegExp(`^${s!.toString(16)}-\\S+ rw-s 00000000 .* /dev/zero \\(deleted\\)$`, 'm'));
  assert.match(maps, new RegExp(`^${p!.toString(16)}-\\S+ rw-p 00001000 .* /dev/zero \\(deleted\\)$`, 'm'));
  w.go();
  assertPassed(w.finish());
});
