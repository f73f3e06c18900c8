// hugetlb memory of 2 MiB pages (CRIU's hugetlb.c): private and shared anonymous areas and a
// memfd made with MFD_HUGETLB, and a SysV segment made with SHM_HUGETLB, come back with their bytes, as mappings of 2048 kB pages, the
// shared ones one object again; only the huge pages in use are written. What stasis cannot
// make again is refused at dump, the tree left running. A machine has no huge pages until
// some are reserved: the file reserves what it needs and gives it back, or skips saying why.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, waitFor } from '../harness.js';
import { readImage, pagemapCount } from '../../../src/image/index.js';
import { PE } from '../../../src/image/pagemap-flags.js';
import { dump, preDump, restore, StasisError } from '../../../src/api/index.js';
import { probeKernel, setChildSubreaper } from '../../../src/sys/index.js';
import { criu, criuWorks, reapDumped } from '../interop/criu-tool.js';
import { backendProblems } from '../../../src/mem/dirty-open.js';
import type { DirtyBackendName } from '../../../src/mem/dirty.js';

const NR = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';
const WANT = 24;
const MAP_HUGETLB = 0x40000, MAP_HUGE_2MB = 21 << 26, MFD_HUGETLB = 4, SHM_HUGETLB = 0o4000, HP = 2n << 20n;
const ANON_SHARED = 1 << 8, ANON_PRIVATE = 1 << 9;

const nr = () => Number(fs.readFileSync(NR, 'utf8'));
/** Writes nr_hugepages: through sysfs, or /proc/sys/vm from a private mount namespace where /proc/sys is read-only. */
function setNr(n: number): void {
  try {
    fs.writeFileSync(NR, `${n}\n`);
  } catch {
    execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
      'while grep -q " /proc/sys " /proc/self/mountinfo; do umount -l /proc/sys || exit 1; done; echo "$1" >/proc/sys/vm/nr_hugepages', '_', String(n)], { stdio: 'ignore' });
  }
}

/** Reserves WANT more huge pages; returns how many were added (given back after the file), or why not. */
function reserve(): { added: number } | { why: string } {
  if (!fs.existsSync(NR)) return { why: 'this kernel has no 2 MiB huge pages (no hugepages-2048kB in sysfs)' };
  const before = nr();
  try {
    setNr(before + WANT);
  } catch (err) {
    return { why: `cannot write nr_hugepages: ${(err as Error).message}` };
  }
  const added = nr() - before;
  if (added < WANT) {
    if (added > 0) setNr(nr() - added);
    return { why: `the kernel found only ${added} of ${WANT} free 2 MiB huge pages to reserve` };
  }
  return { added };
}

const res = reserve();
after(() => {
  if ('added' in res) setNr(Math.max(0, nr() - res.added));
});
const skip = 'why' in res ? res.why : false;

const bin = () => compileWorkload('hugetlb');
const areas = (w: Workload) => fs.readFileSync(w.file('areas'), 'utf8').trim().split(' ').map((a) => BigInt(`0x${a}`)) as [bigint, bigint, bigint];

/** KernelPageSize of the VMA of `pid` starting at `at`, in kB. */
function pageKb(pid: number, at: bigint): number {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const i = smaps.search(new RegExp(`^${at.toString(16)}-`, 'm'));
  assert.ok(i >= 0, `pid ${pid} has no VMA at 0x${at.toString(16)}`);
  return Number(/^KernelPageSize:\s+(\d+) kB$/m.exec(smaps.slice(i))![1]);
}

test('private and shared hugetlb memory and a MFD_HUGETLB memfd come back of 2 MiB pages with their bytes, the shared ones shared again', { skip }, async () => {
  const w = new Workload('hugetlb', bin()).start();
  const [p, s, m] = areas(w);
  const child = Number(fs.readFileSync(w.file('pids'), 'utf8'));
  const { images, d } = await checkpointRestore(w);
  const vmas = readImage(images, 'mm', w.pid)[0]!.vmas;
  const at = (a: bigint) => vmas.find((v) => v.start === a)!;
  // CRIU's way: MAP_HUGETLB and the page size in the VMA's flags.
  for (const a of [p, s, m]) assert.equal(at(a).flags & (MAP_HUGETLB | (0x3f << 26)), MAP_HUGETLB | MAP_HUGE_2MB, `flags of 0x${a.toString(16)}`);
  assert.ok(at(p).status & ANON_PRIVATE);
  assert.ok(at(s).status & ANON_SHARED);
  // Only the two huge pages of p in use are written (1024 small pages), not the third.
  const inP = readImage(images, 'pagemap', w.pid).entries.filter((e) => e.vaddr >= p && e.vaddr < p + 3n * HP);
  assert.equal(inP.reduce((n, e) => n + pagemapCount(e), 0), 1024);
  assert.ok(inP.every((e) => e.vaddr + BigInt(pagemapCount(e)) * 4096n <= p + 2n * HP));
  // The memfd keeps its page size in hugetlb_flag; its object holds one huge page in use.
  const ino = readImage(images, 'memfd-inode', undefined).find((i) => i.name === 'hugefd')!;
  assert.equal(ino.hugetlbFlag, (MFD_HUGETLB | MAP_HUGE_2MB) >>> 0);
  const shm = readImage(images, 'shmem-pagemap', ino.shmid);
  assert.equal(shm.entries.reduce((n, e) => n + pagemapCount(e), 0), 512);
  assert.equal(d.shmemObjects >= 2, true);
  // Seen from outside too: 2048 kB pages, and the child maps the same shared object as the parent.
  for (const a of [p, s, m]) assert.equal(pageKb(w.pid, a), 2048);
  assert.equal(pageKb(child, s), 2048);
  const inode = (pid: number, a: bigint) => fs.statSync(`/proc/${pid}/map_files/${a.toString(16)}-${(a + 2n * HP).toString(16)}`).ino;
  assert.equal(inode(child, s), inode(w.pid, s), 'the child maps another object than the parent');
  assert.match(fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8'), new RegExp(`^${s.toString(16)}-\\S+ rw-s .* /anon_hugepage \\(deleted\\)$`, 'm'));
  w.go();
  assertPassed(w.finish());
});

test('a private mapping of shared hugetlb memory is refused at dump, and the tree runs on', { skip }, async () => {
  const w = new Workload('hugetlb-privshared', bin(), ['privshared']).start();
  await assert.rejects(dump({ pid: w.pid, imagesDir: tmpDir('hugetlb-privshared-img') }),
    (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && /private mapping of shared hugetlb memory/.test(e.message));
  w.go();
  assertPassed(w.finish());
});

const problems = backendProblems(probeKernel());
for (const backend of ['uffd', 'hash'] as DirtyBackendName[]) {
  const why = skip || (problems[backend] ? `${backend} backend unavailable: ${problems[backend]}` : false);
  test(`hugetlb pages written between a pre-dump tracked by ${backend} and the dump come back as written then`, { skip: why }, async () => {
    const w = new Workload(`hugetlb-incr-${backend}`, bin(), ['incr']).start();
    const pre = tmpDir(`hugetlb-pre-${backend}`);
    await preDump({ pid: w.pid, imagesDir: pre, trackBackend: backend });
    fs.writeFileSync(w.file('step'), '');
    waitFor('the workload to write its pages again', () => fs.existsSync(w.file('stepped')));
    const { images } = await checkpointRestore(w, { dump: { prevImagesDir: pre } });
    assert.ok(fs.existsSync(`${images}/parent`), 'the dump has no parent');
    const [p, s, m] = areas(w);
    // p's first huge page, unchanged since the pre-dump, is left to it; its second is written again.
    const kinds = (from: bigint, to: bigint) => {
      const k = { parent: 0, present: 0 };
      for (const e of readImage(images, 'pagemap', w.pid).entries) {
        if (e.vaddr < from || e.vaddr >= to) continue;
        if ((e.flags ?? 0) & PE.PARENT) k.parent += pagemapCount(e);
        else k.present += pagemapCount(e);
      }
      return k;
    };
    assert.deepEqual(kinds(p, p + HP), { parent: 512, present: 0 });
    assert.ok(kinds(p + HP, p + 2n * HP).present > 0, 'the page written after the pre-dump is not in the dump');
    for (const a of [p, s, m]) assert.equal(pageKb(w.pid, a), 2048);
    w.go();
    assertPassed(w.finish());
  });
}

test('a SysV segment made with SHM_HUGETLB comes back of 2 MiB pages with its bytes, at its id, attached where it was', { skip }, async () => {
  const w = new Workload('sysv-huge', compileWorkload('sysv-huge')).start();
  const [id, at] = fs.readFileSync(w.file('ids'), 'utf8').trim().split(' ');
  const addr = BigInt(`0x${at}`);
  const { images } = await checkpointRestore(w);
  // CRIU's way: SHM_HUGETLB | SHM_HUGE_2MB in the segment's hugetlb_flag, MAP_HUGETLB in its VMA's flags.
  const ns = readImage(images, 'ids', w.pid)[0]!.ipcNsId!;
  const [seg] = readImage(images, 'ipcns-shm', ns);
  assert.equal(seg!.entry.desc!.id, Number(id));
  assert.equal(seg!.entry.hugetlbFlag, (SHM_HUGETLB | MAP_HUGE_2MB) >>> 0);
  assert.equal(Buffer.from(seg!.payload).readUInt8((3 << 20) - 1), 0x5a);
  const vma = readImage(images, 'mm', w.pid)[0]!.vmas.find((v) => v.start === addr)!;
  assert.equal(vma.flags & (MAP_HUGETLB | (0x3f << 26)), MAP_HUGETLB | MAP_HUGE_2MB);
  // Seen from outside: the attachment is of 2048 kB pages again, of a SysV segment.
  assert.equal(pageKb(w.pid, addr), 2048);
  assert.match(fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8'), new RegExp(`^${at}-\\S+ rw-s .* /SYSV48554745 \\(deleted\\)$`, 'm'));
  w.go();
  assertPassed(w.finish());
});

// CRIU 4.2 keeps hugetlb memory in the same images: each tool restores what the other dumped.
const noCriu = skip || criuWorks();
if (!noCriu) setChildSubreaper();

test('CRIU 4.2 restores the hugetlb memory stasis dumped', { skip: noCriu }, async () => {
  const w = new Workload('hugetlb-to-criu', bin()).start();
  const images = tmpDir('hugetlb-to-criu-img');
  await dump({ pid: w.pid, imagesDir: images, shellJob: true });
  criu(['restore', '-d', '-j'], images, 'restore.log');
  const [p, s, m] = areas(w);
  for (const a of [p, s, m]) assert.equal(pageKb(w.pid, a), 2048);
  w.go();
  assertPassed(w.finish());
});

test("stasis restores the hugetlb memory CRIU 4.2 dumped", { skip: noCriu }, async () => {
  const w = new Workload('hugetlb-from-criu', bin()).start({ setsid: true });
  const images = tmpDir('hugetlb-from-criu-img');
  criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
  reapDumped(images);
  const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
  assert.equal(r.pid, w.pid);
  const [p, s, m] = areas(w);
  for (const a of [p, s, m]) assert.equal(pageKb(w.pid, a), 2048);
  w.go();
  assertPassed(w.finish());
});

// CRIU 4.2 keeps a SysV segment's pages in pagemap-shmem-<id>.img (in_pagemaps), a hugetlb
// one's too, every small page of its huge pages (hugetlbfs has no holes for SEEK_DATA to
// find); it dumps only segments of whole huge pages ("whole": 4 MiB, two pages).
test('stasis restores a SHM_HUGETLB SysV segment CRIU 4.2 dumped, its pages from a pagemap-shmem image', { skip: noCriu }, async () => {
  const w = new Workload('sysv-huge-from-criu', compileWorkload('sysv-huge'), ['whole']).start({ setsid: true });
  const [id, at] = fs.readFileSync(w.file('ids'), 'utf8').trim().split(' ');
  const images = tmpDir('sysv-huge-from-criu-img');
  criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
  reapDumped(images);
  const ns = readImage(images, 'ids', w.pid)[0]!.ipcNsId!;
  const [seg] = readImage(images, 'ipcns-shm', ns);
  assert.deepEqual([seg!.entry.desc!.id, seg!.entry.inPagemaps, seg!.entry.hugetlbFlag], [Number(id), true, (SHM_HUGETLB | MAP_HUGE_2MB) >>> 0]);
  assert.equal(readImage(images, 'shmem-pagemap', Number(id)).entries.reduce((n, e) => n + pagemapCount(e), 0), 1024);
  const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
  assert.equal(r.pid, w.pid);
  assert.equal(pageKb(w.pid, BigInt(`0x${at}`)), 2048);
  w.go();
  assertPassed(w.finish());
});
