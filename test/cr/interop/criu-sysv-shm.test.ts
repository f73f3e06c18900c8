// SysV shared memory segments CRIU 4.2 dumped, restored by stasis: CRIU keeps a segment's
// pages in pagemap-shmem-<segment id>.img and its pages image (IpcShmEntry.in_pagemaps), the
// pages never touched (holes) in no entry. The restored workload checks each segment's id,
// key, size, mode and every byte, and that its holes use no memory still. Damaged images
// (a pagemap missing, a pages image cut short, pages past a segment's end) are refused
// before anything is made, leaving no process. Without CRIU's binary the tests are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Workload, compileWorkload, assertPassed, tmpDir } from '../harness.js';
import { restore } from '../../../src/api/index.js';
import { readImage, readPagemapImage, writeImage, pagemapEntry, imagePath, PE } from '../../../src/image/index.js';
import { PagemapHeadSchema } from '../../../src/image/gen/stasis/pagemap_pb.js';
import { setChildSubreaper } from '../../../src/sys/index.js';
import { criu, criuWorks, reapDumped } from './criu-tool.js';

const skip = criuWorks();
if (!skip) setChildSubreaper();

const PAGE = 4096;

/** sysv-pages dumped by CRIU: the workload, its images, the IPC namespace's id and its segments' ids (A, B, C). */
function dumpedByCriu(tag: string): { w: Workload; images: string; ns: number; ids: [number, number, number] } {
  const w = new Workload(`sysv-pages-${tag}`, compileWorkload('sysv-pages')).start({ setsid: true });
  const ids = fs.readFileSync(w.file('ids'), 'utf8').trim().split(' ').map(Number) as [number, number, number];
  const images = tmpDir(`sysv-pages-${tag}`);
  criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
  reapDumped(images);
  const ns = readImage(images, 'ids', w.pid)[0]!.ipcNsId!;
  return { w, images, ns, ids };
}

function copyOf(images: string, tag: string): string {
  const dir = tmpDir(`sysv-pages-${tag}`);
  for (const f of fs.readdirSync(images)) fs.copyFileSync(path.join(images, f), path.join(dir, f));
  return dir;
}

test("stasis restores SysV segments whose pages CRIU 4.2 keeps in pagemap-shmem images, with their holes", { skip }, async () => {
  const { w, images, ns, ids } = dumpedByCriu('from-criu');
  const [a, b, c] = ids;
  // CRIU's way, as this test relies on it: every segment in_pagemaps, its pages in its own pagemap.
  const shm = readImage(images, 'ipcns-shm', ns);
  assert.deepEqual(shm.map((s) => [s.entry.desc!.id, Number(s.entry.size), s.entry.inPagemaps]).sort(),
    [[a, 5 * PAGE + 123, true], [b, 3 * PAGE, true], [c, 2 * PAGE, true]].sort());
  const pages = (id: number) => {
    const { runs } = readPagemapImage(images, 'shmem-pagemap', id);
    return Array.from({ length: runs.n }, (_, i) => [runs.page[i], runs.count[i]]);
  };
  assert.deepEqual(pages(a), [[0, 1], [2, 2], [5, 1]], 'segment A: page 1 a hole, page 3 (zeroes written) kept');
  assert.deepEqual(pages(b), [[1, 1]]);
  assert.deepEqual(pages(c), []);
  const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});

test('damaged pagemap-shmem and pages images of SysV segments are refused, leaving nothing', { skip }, async () => {
  const { w, images, ids } = dumpedByCriu('damaged');
  const [a, b] = ids;
  const pagesOf = (dir: string, id: number) => imagePath(dir, 'pages', readPagemapImage(dir, 'shmem-pagemap', id).head.pagesId);

  const noPagemap = copyOf(images, 'no-pagemap');
  fs.rmSync(imagePath(noPagemap, 'shmem-pagemap', a));
  const cut = copyOf(images, 'cut');
  fs.truncateSync(pagesOf(cut, a), 3 * PAGE);
  // B's one page moved to page 3 of its 3: past its end.
  const past = copyOf(images, 'past');
  writeImage(past, 'shmem-pagemap', b, {
    head: create(PagemapHeadSchema, { pagesId: readPagemapImage(past, 'shmem-pagemap', b).head.pagesId }),
    entries: [pagemapEntry(BigInt(3 * PAGE), 1, PE.PRESENT)],
  });

  const cases: [string, string, string, RegExp][] = [
    [noPagemap, 'a missing pagemap', 'E_NO_IMAGE', new RegExp(`SysV shared memory segment ${a} .*No pagemap-shmem-${a}\\.img`)],
    [cut, 'a pages image cut short', 'E_TRUNCATED', new RegExp(`SysV shared memory segment ${a} .*holds ${3 * PAGE} bytes; pagemap-shmem-${a}\\.img lists ${4 * PAGE}`)],
    [past, 'pages past the end', 'E_CORRUPT', new RegExp(`pagemap-shmem-${b}\\.img has pages up to offset ${4 * PAGE} of SysV shared memory segment ${b}, which has ${3 * PAGE} bytes`)],
  ];
  for (const [dir, what, code, message] of cases) {
    await assert.rejects(restore({ imagesDir: dir, detach: true, shellJob: true, noVerify: true }), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, `${what}: ${err.message}`);
      assert.match(err.message, message, what);
      return true;
    }, what);
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, `the restore of images with ${what} left pid ${w.pid}`);
  }
  // The images undamaged restore (the pids are free again).
  const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});
