// Shared memory across a process tree: each object dumped once (its used pages only), one
// object per shmid on restore, mapped by every task at its addresses and offsets, so that
// writes by one process are seen by the others after the restore as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, verifyImages } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { readImage, pagemapCount } from '../../../src/image/index.js';
import { FdTypes } from '../../../src/image/gen/stasis/fdinfo_pb.js';
import { VMA } from '../../../src/mem/vma.js';

const bin = () => compileWorkload('shmem');

/** Runs a test body; on failure kills the workload's tree (a ping-pong would spin on). */
async function guarded(w: Workload, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const pids = fs.existsSync(w.file('pids')) ? fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number) : [];
    for (const p of pids.filter((x) => x > 0 && x !== w.pid)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    w.kill();
    throw err;
  }
}

function pidsOf(w: Workload): [number, number] {
  const [a, b] = fs.readFileSync(w.file('pids'), 'utf8').trim().split(' ').map(Number);
  return [a!, b!];
}

/** The maps lines of a pid that name `what`, as "start-end perms offset path", and their inodes. */
function mapsLines(pid: number, what: string): string[] {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(what))
    .map((l) => l.split(/\s+/).filter((_, i) => i !== 3 && i !== 4).join(' '));
}
function mapsInodes(pid: number, what: string): string[] {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(what)).map((l) => l.split(/\s+/)[4]!);
}

function shmemPagemaps(images: string): { shmid: number; pagesBytes: number; pages: number; entries: { vaddr: bigint; nrPages: number }[] }[] {
  return fs.readdirSync(images).filter((f) => /^pagemap-shmem-\d+\.img$/.test(f)).map((f) => {
    const shmid = Number(/\d+/.exec(f)![0]);
    const pm = readImage(images, 'shmem-pagemap', shmid);
    const pagesBytes = fs.statSync(path.join(images, `pages-${pm.head.pagesId}.img`)).size;
    return { shmid, pagesBytes, pages: pm.entries.reduce((n, e) => n + pagemapCount(e), 0), entries: pm.entries.map((e) => ({ vaddr: e.vaddr, nrPages: pagemapCount(e) })) };
  });
}

test('a parent and child ping-pong through shared anonymous memory, /dev/zero and a memfd before and after the restore', async () => {
  const w = new Workload('shmem-share', bin(), ['share']).start();
  await guarded(w, async () => {
    const [parent, child] = pidsOf(w);
    const before = { anon: mapsLines(parent, '/dev/zero'), memfd: mapsLines(parent, '/memfd:stasis-test') };
    assert.equal(before.anon.length, 2, 'the anonymous mapping and /dev/zero');
    const { images, d } = await checkpointRestore(w);
    assert.deepEqual([...d.pids].sort(), [parent, child].sort());

    // Three objects (anonymous, /dev/zero, memfd), each written once for both processes.
    assert.equal(d.shmemObjects, 3);
    const pms = shmemPagemaps(images);
    assert.equal(pms.length, 3);
    const mm = readImage(images, 'mm', parent)[0]!;
    const anon = mm.vmas.filter((v) => v.status & VMA.ANON_SHARED);
    assert.equal(anon.length, 2);
    for (const v of anon) assert.ok(pms.some((p) => BigInt(p.shmid) === v.shmid), `VMA at ${v.start.toString(16)} names a pagemap-shmem image`);
    const childMm = readImage(images, 'mm', child)[0]!;
    assert.deepEqual(childMm.vmas.filter((v) => v.status & VMA.ANON_SHARED).map((v) => v.shmid).sort(), anon.map((v) => v.shmid).sort());
    // The memfd, as CRIU writes it: a FILE_SHARED | MEMFD area naming a MEMFD file, whose inode names the pages.
    const mv = mm.vmas.find((v) => v.status & VMA.MEMFD)!;
    assert.ok(mv.status & VMA.FILE_SHARED);
    assert.equal(mv.pgoff, 4096n);
    const mf = readImage(images, 'files', undefined).find((f) => BigInt(f.id) === mv.shmid)!;
    assert.equal(mf.type, FdTypes.MEMFD);
    const ino = readImage(images, 'memfd-inode', undefined)[0]!;
    assert.equal(ino.name, 'stasis-test');
    assert.equal(ino.size, 8n * 4096n);
    assert.equal(BigInt(ino.inodeId), BigInt(mf.memfd!.inodeId));
    // Pages 0 (only in the object: written with pwrite, never mapped) and 1-4 (mapped).
    const mpm = pms.find((p) => p.shmid === ino.shmid)!;
    assert.deepEqual(mpm.entries.map((e) => [e.vaddr, e.nrPages]), [[0n, 5]]);

    // The same layout, offsets and sharing; one object per shmid in both processes.
    assert.deepEqual(mapsLines(parent, '/dev/zero'), before.anon);
    assert.deepEqual(mapsLines(parent, '/memfd:stasis-test'), before.memfd);
    assert.deepEqual(mapsLines(child, '/dev/zero'), mapsLines(parent, '/dev/zero'));
    assert.deepEqual(mapsLines(child, '/memfd:stasis-test'), mapsLines(parent, '/memfd:stasis-test'));
    assert.deepEqual(mapsInodes(child, '/dev/zero'), mapsInodes(parent, '/dev/zero'), 'the child maps the same objects as the parent');
    assert.equal(new Set(mapsInodes(parent, '/dev/zero')).size, 2, 'two distinct objects');
    w.go();
    const r = w.finish(60000);
    assertPassed(r);
    assert.match(r.result, /count \d+ \(parent \d+, child \d+\)/);
  });
});

test('a 64 MiB shared mapping of which 1 MiB was touched writes 1 MiB of pages', async () => {
  const w = new Workload('shmem-sparse', bin(), ['sparse']).start();
  await guarded(w, async () => {
    const { images, d } = await checkpointRestore(w);
    assert.equal(d.shmemObjects, 1);
    assert.equal(d.shmemPagesScanned, 16384);
    assert.equal(d.shmemPagesWritten, 256);
    const [pm] = shmemPagemaps(images);
    assert.equal(pm!.pagesBytes, 1 << 20);
    assert.equal(pm!.entries.length, 256);
    w.go();
    assertPassed(w.finish());
  });
});

test('pages written then unmapped by the only mapper survive in the object (SEEK_DATA)', async () => {
  const w = new Workload('shmem-unmapped', bin(), ['unmapped']).start();
  await guarded(w, async () => {
    const [pid] = pidsOf(w);
    assert.equal(mapsLines(pid, '/dev/zero').length, 2, 'two pieces of the object are mapped');
    const { images, d } = await checkpointRestore(w);
    // Only 8 of the 16 pages are mapped anywhere; the object holds all 16.
    assert.equal(d.shmemPagesWritten, 16);
    assert.deepEqual(shmemPagemaps(images)[0]!.entries.map((e) => [e.vaddr, e.nrPages]), [[0n, 16]]);
    w.go();
    assertPassed(w.finish());
  });
});

test('private pages shared copy-on-write after fork come back diverged in each process', async () => {
  const w = new Workload('shmem-cow', bin(), ['cow']).start();
  await guarded(w, async () => {
    const { d } = await checkpointRestore(w);
    assert.equal(d.shmemObjects, 0);
    w.go();
    assertPassed(w.finish());
  });
});

test('memfds held open come back as the same objects as their mappings, with offsets, modes, seals and contents', async () => {
  const w = new Workload('shmem-memfd-open', bin(), ['memfd-open']).start();
  await guarded(w, async () => {
    const images = tmpDir('shmem-memfd-open-img');
    const d = await dump({ pid: w.pid, imagesDir: images });
    verifyImages(images);
    assert.equal(d.shmemObjects, 2, 'one object per memfd, however many fds and mappings');
    await restore({ imagesDir: images, detach: true });
    w.go();
    assertPassed(w.finish());
  });
});

test('a cut shared memory pages image or a missing pagemap-shmem fails the restore before any process exists', async () => {
  const w = new Workload('shmem-cut', bin(), ['unmapped']).start();
  await guarded(w, async () => {
    const images = tmpDir('shmem-cut-img');
    await dump({ pid: w.pid, imagesDir: images, leaveRunning: true });
    const [pm] = shmemPagemaps(images);
    const pages = path.join(images, `pages-${readImage(images, 'shmem-pagemap', pm!.shmid).head.pagesId}.img`);
    fs.truncateSync(pages, pm!.pagesBytes - 4096);
    await assert.rejects(restore({ imagesDir: images, detach: true }), (e: unknown) => e instanceof StasisError && e.code === 'E_TRUNCATED' && e.message.includes(pages));
    fs.rmSync(path.join(images, `pagemap-shmem-${pm!.shmid}.img`));
    await assert.rejects(restore({ imagesDir: images, detach: true }), (e: unknown) => e instanceof StasisError && e.code === 'E_NO_IMAGE');
    w.go();
    assertPassed(w.finish());
  });
});
