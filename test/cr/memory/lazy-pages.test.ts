// restore --lazy-pages: the tree runs before its memory is in, and is exactly as after a
// normal restore: the workload checks every word of its areas (and their checksums) while
// the filler is still at work, then moves, drops and forks its areas under it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, assertPassed, tmpDir, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { lazyPagesUnavailable } from '../../../src/mem/lazy-pages.js';

const why = lazyPagesUnavailable();
const skip = why ? `this kernel cannot restore lazily: ${why}` : false;
const lazymem = () => compileWorkload('lazymem', ['-lpthread']);

function noUffdIn(pid: number): void {
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let link = '';
    try {
      link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    assert.notEqual(link, 'anon_inode:[userfaultfd]', `pid ${pid} holds a userfaultfd at fd ${fd}`);
  }
}

test('a lazily restored process with 256 MiB in four areas and four threads checks every byte while its pages come in, and moves, drops and forks them meanwhile', { skip }, async () => {
  const w = new Workload('lazymem', lazymem(), ['256']).start();
  const images = tmpDir('lazymem-img');
  await dump({ pid: w.pid, imagesDir: images });
  verifyImages(images);
  w.go(); // before the restore: it checks itself the moment it runs
  const r = await restore({ imagesDir: images, detach: true, lazyPages: true });
  assert.equal(r.pid, w.pid);
  assert.ok(r.lazy, 'no lazy statistics');
  assert.ok(r.lazy.copied >= 65536 - 8192 - 16, `only ${r.lazy.copied} pages copied`);
  assert.ok(r.lazy.runningMs < r.lazy.fillMs);
  // The fork, the mremap and the MADV_DONTNEED came while the areas were still filling.
  assert.ok(r.lazy.events >= r.lazy.faults + 3, `only ${r.lazy.events - r.lazy.faults} non-fault events`);
  if (fs.existsSync(`/proc/${w.pid}/fd`)) noUffdIn(w.pid);
  assertPassed(w.finish(60000));
});

test('a process dumped right after a lazy restore has all its memory, and restores from that dump', { skip }, async () => {
  const w = new Workload('lazymem', lazymem(), ['256']).start();
  const first = tmpDir('lazymem-img');
  await dump({ pid: w.pid, imagesDir: first });
  const r = await restore({ imagesDir: first, detach: true, lazyPages: true });
  assert.equal(r.pid, w.pid);
  noUffdIn(w.pid);
  // The task never touched its areas: every page came from the background pass.
  assert.equal(r.lazy!.faults < 64, true, `${r.lazy!.faults} faults from a task that waits`);
  const second = tmpDir('lazymem-img2');
  const d = await dump({ pid: w.pid, imagesDir: second });
  assert.ok(d.pagesWritten >= 65536 - 8192, `the second dump wrote ${d.pagesWritten} pages`);
  const r2 = await restore({ imagesDir: second, detach: true });
  assert.equal(r2.pid, w.pid);
  w.go();
  assertPassed(w.finish(60000));
});

test('a tree of two tasks restored lazily: each checks its own copy of the areas', { skip }, async () => {
  const w = new Workload('lazymem', lazymem(), ['64', 'tree']).start();
  const images = tmpDir('lazymem-img');
  await dump({ pid: w.pid, imagesDir: images });
  w.go();
  const r = await restore({ imagesDir: images, detach: true, lazyPages: true });
  assert.equal(r.pids.length, 2);
  assertPassed(w.finish(60000));
});
