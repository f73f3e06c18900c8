import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSmaps } from '../proc/index.js';
import { StasisError } from '../errors.js';
import { collectVmas } from './collect-vmas.js';
import { VMA, MAP } from './vma.js';

/** One smaps entry as Linux 6.18 prints a hugetlb area. */
function area(head: string, pageKb: number, flags: string): string {
  const keys = ['Size: 4096', 'KernelPageSize: ' + pageKb, 'MMUPageSize: ' + pageKb, 'Rss: 0', 'Pss: 0', 'Pss_Dirty: 0', 'Shared_Clean: 0', 'Shared_Dirty: 0',
    'Private_Clean: 0', 'Private_Dirty: 0', 'Referenced: 0', 'Anonymous: 0', 'KSM: 0', 'LazyFree: 0', 'AnonHugePages: 0', 'ShmemPmdMapped: 0',
    'FilePmdMapped: 0', 'Shared_Hugetlb: 0', 'Private_Hugetlb: 4096', 'Swap: 0', 'SwapPss: 0', 'Locked: 0'];
  return `${head}\n${keys.map((k) => `${k} kB`).join('\n')}\nTHPeligible:    0\nVmFlags: ${flags}\n`;
}

const HUGE = 0x40000 | (21 << 26);

test('collectVmas() keeps MAP_HUGETLB and the 2 MiB page size of private and shared hugetlb memory', () => {
  const text = area('7f0000000000-7f0000400000 rw-p 00000000 00:10 4242                       /anon_hugepage (deleted)', 2048, 'rd wr mr mw me de ht')
    + area('7f0000400000-7f0000800000 rw-s 00000000 00:10 4243                       /anon_hugepage (deleted)', 2048, 'rd wr sh mr mw me ms de ht')
    + area('7f0000800000-7f0000a00000 rw-s 00000000 00:10 4244                       /memfd:x (deleted)', 2048, 'rd wr sh mr mw me ms ht')
    + area('7f0000a00000-7f0000e00000 rw-s 00000000 00:01 3                          /SYSV0000002a (deleted)', 2048, 'rd wr sh mr mw me ms ht');
  const [p, s, m, v] = collectVmas(1, parseSmaps(text)).map((c) => c.vma);
  assert.equal(p!.flags, MAP.PRIVATE | MAP.ANONYMOUS | HUGE);
  assert.equal(p!.status, VMA.REGULAR | VMA.ANON_PRIVATE);
  assert.equal(s!.flags, MAP.SHARED | MAP.ANONYMOUS | HUGE);
  assert.equal(s!.status, VMA.REGULAR | VMA.ANON_SHARED);
  assert.equal(s!.shmid, 4243n);
  assert.equal(m!.flags, MAP.SHARED | HUGE);
  assert.equal(m!.status, VMA.REGULAR | VMA.FILE_SHARED | VMA.MEMFD);
  // A SHM_HUGETLB segment attached: attached again by shmat at restore, its id in shmid.
  assert.equal(v!.flags, MAP.SHARED | MAP.ANONYMOUS | HUGE);
  assert.equal(v!.status, VMA.REGULAR | VMA.ANON_SHARED | VMA.SYSVIPC);
  assert.equal(v!.shmid, 3n);
});

test('collectVmas() refuses 1 GiB pages, hugetlbfs files, private mappings of SHM_HUGETLB segments and private mappings of shared hugetlb memory', () => {
  const refused = (text: string, why: RegExp) => assert.throws(() => collectVmas(1, parseSmaps(text)), (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && why.test(e.message));
  refused(area('7f0000000000-7f0040000000 rw-p 00000000 00:10 1 /anon_hugepage (deleted)', 1048576, 'rd wr mr mw me de ht'), /pages are of 1048576 kB/);
  refused(area('7f0000000000-7f0000200000 rw-s 00000000 00:2f 7 /mnt/huge/file', 2048, 'rd wr sh mr mw me ms ht'), /files on a hugetlbfs mount/);
  refused(area('7f0000000000-7f0000200000 r--p 00000000 00:01 3 /SYSV0000002a (deleted)', 2048, 'rd mr mw me ht'), /private mapping of a SysV segment made with SHM_HUGETLB/);
  refused(area('7f0000000000-7f0000200000 rw-s 00000000 00:10 9 /anon_hugepage (deleted)', 2048, 'rd wr sh mr mw me ms ht')
    + area('7f0000200000-7f0000400000 r--p 00000000 00:10 9 /anon_hugepage (deleted)', 2048, 'rd mr mw me ht'), /private mapping of shared hugetlb/);
});
