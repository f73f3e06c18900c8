// Mappings of files that lost their names: their contents kept as ghost files (the same
// ghosts fds of them get), mapped again from one inode per file, with their flags; a file
// still linked elsewhere is refused without --link-remap, and one past the ghost limit too,
// the task left running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused, waitFor, pageFrame } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { RemapType } from '../../../src/image/gen/stasis/remap-file-path_pb.js';

const MAP_SHARED = 1, MAP_PRIVATE = 2, FILE_PRIVATE = 1 << 6, FILE_SHARED = 1 << 7;

test('deleted and replaced files mapped shared and private come back as one deleted inode each, with their bytes, sharing and flags', async () => {
  const w = new Workload('unlink-mmap', compileWorkload('unlink-mmap')).start();
  const [s1, s2, p, b, c] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((a) => BigInt(`0x${a}`));
  const { images } = await checkpointRestore(w);
  const vmas = readImage(images, 'mm', w.pid)[0]!.vmas;
  const at = (a: bigint | undefined) => vmas.find((v) => v.start === a)!;
  assert.equal(at(s1).flags & 3, MAP_SHARED);
  assert.ok(at(s1).status & FILE_SHARED);
  assert.equal(at(s1).fdflags, 2, 'a writable shared mapping is opened O_RDWR');
  assert.equal(at(b).fdflags, 0, 'a read-only shared mapping is opened O_RDONLY');
  assert.equal(at(p).flags & 3, MAP_PRIVATE);
  assert.ok(at(p).status & FILE_PRIVATE);
  // One file entry for a.bin's three mappings, remapped (with the fd's) to one ghost.
  assert.equal(at(s1).shmid, at(s2).shmid);
  assert.equal(at(s1).shmid, at(p).shmid);
  const remaps = readImage(images, 'remap-fpath', undefined);
  const ghostOf = (id: bigint) => remaps.find((r) => r.origId === Number(id));
  for (const a of [s1, b, c]) assert.equal(ghostOf(at(a).shmid)?.remapType, RemapType.GHOST);
  const ghosts = fs.readdirSync(images).filter((f) => f.startsWith('ghost-file-'));
  assert.equal(ghosts.length, 3, 'a.bin (its fd and mappings), b.bin and the replaced c.bin');
  assert.equal(new Set(remaps.map((r) => r.remapId)).size, 3);
  // Restore made the ghosts under their old names and removed them: a.bin and b.bin are free, c.bin is the new file.
  assert.deepEqual(fs.readdirSync(w.dir).filter((f) => f.endsWith('.bin') || f.includes('ghost')), ['c.bin']);
  const maps = fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8');
  assert.match(maps, new RegExp(`^${s1!.toString(16)}-\\S+ rw-s .*/a\\.bin \\(deleted\\)$`, 'm'));
  assert.match(maps, new RegExp(`^${b!.toString(16)}-\\S+ r--s .*/b\\.bin \\(deleted\\)$`, 'm'));
  assert.match(maps, new RegExp(`^${p!.toString(16)}-\\S+ rw-p .*/a\\.bin \\(deleted\\)$`, 'm'));
  w.go();
  assertPassed(w.finish());
});

test('a parent and child sharing mappings of a deleted file (a private copy copy-on-write) share its one inode and their pages again', async () => {
  const w = new Workload('unlink-mmap-fork', compileWorkload('unlink-mmap'), ['fork']).start();
  const [s1, , p] = fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((a) => BigInt(`0x${a}`));
  const child = waitFor('the child', () => Number(fs.readFileSync(`/proc/${w.pid}/task/${w.pid}/children`, 'utf8').trim()));
  await checkpointRestore(w);
  const ino = (pid: number, a: bigint, len: bigint) => fs.statSync(`/proc/${pid}/map_files/${a.toString(16)}-${(a + len).toString(16)}`, { bigint: true }).ino;
  assert.equal(ino(child, s1!, 8192n), ino(w.pid, s1!, 8192n));
  assert.equal(ino(child, p!, 8192n), ino(w.pid, p!, 8192n));
  // The private copy of page 2 is one page shared copy-on-write (zdtm cow01's check): the same frame in both.
  assert.notEqual(pageFrame(w.pid, p! + 4096n), 0n);
  assert.equal(pageFrame(child, p! + 4096n), pageFrame(w.pid, p! + 4096n));
  w.go();
  assertPassed(w.finish());
});

test('a mapped file unlinked but linked elsewhere is refused without --link-remap, the task left running', async () => {
  const w = new Workload('unlink-mmap-linked', compileWorkload('unlink-mmap-refused'), ['linked']).start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/the mapping at 0x[0-9a-f]+-0x[0-9a-f]+ of pid \d+: .*m\.bin was unlinked or replaced, but its inode has 1 other link\(s\)/, /--link-remap/]);
    w.go();
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});

test('with --link-remap, a mapped file unlinked but linked elsewhere comes back as that same inode, its other link kept', async () => {
  const w = new Workload('unlink-mmap-linkremap', compileWorkload('unlink-mmap-refused'), ['linked']).start();
  const ino = fs.statSync(w.file('m.lnk')).ino;
  const { images } = await checkpointRestore(w, { dump: { linkRemap: true } });
  assert.deepEqual(readImage(images, 'remap-fpath', undefined).map((r) => r.remapType), [RemapType.LINKED]);
  assert.equal(fs.statSync(w.file('m.lnk')).ino, ino);
  // The mapping is m.lnk's inode again, and the temporary link is gone.
  const line = fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8').split('\n').find((l) => l.endsWith('m.bin (deleted)'))!;
  const [range] = line.split(' ');
  assert.equal(fs.statSync(`/proc/${w.pid}/map_files/${range}`).ino, ino);
  assert.deepEqual(fs.readdirSync(w.dir).filter((f) => f.startsWith('link_remap')), []);
  w.go();
  assertPassed(w.finish());
});

test('a mapped deleted file past the ghost limit is refused with E_GHOST_LIMIT, the task left running', async () => {
  const w = new Workload('unlink-mmap-big', compileWorkload('unlink-mmap-refused'), ['big']).start();
  try {
    await assertDumpRefused(w, 'E_GHOST_LIMIT', [/the mapping at 0x[0-9a-f]+-0x[0-9a-f]+ of pid \d+: .*m\.bin was deleted or replaced and its contents \(\d+ bytes\) exceed the ghost file limit/]);
    w.go();
    assertPassed(w.finish());
  } finally {
    w.kill();
  }
});
