// Turning a fresh task (a copy of its stub) into the restored task's address space, with
// injected syscalls only: a scratch area where neither layout has anything, everything else
// unmapped, every VMA mapped at its place, pages read in by the task itself (one preadv per
// 1024 runs: the kernel copies straight from the page cache), protections and advice put
// back, the vDSO mapped where it was, and the mm fields set with PR_SET_MM_MAP.
import fs from 'node:fs';
import type { Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { VMA, MAP, PROT, isMappedByRestore, isShmemVma, type VmaSpec } from '../mem/vma.js';
import type { PageRun } from '../mem/page-runs.js';
import type { PageSource } from '../mem/page-chain.js';

const TASK_SIZE = 0x7ffffffff000n;
const SCRATCH_SIZE = 1 << 20;
const PAGE = 4096n;
const IOV_MAX = 1024;
const O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const MAP_FIXED = 0x10, MAP_FIXED_NOREPLACE = 0x100000;
const ARCH_MAP_VDSO_64 = 0x2003;
const PR_SET_MM = 35, PR_SET_MM_MAP = 14, PR_SET_NAME = 15;

export interface MmFields {
  startCode: bigint; endCode: bigint; startData: bigint; endData: bigint; startStack: bigint;
  startBrk: bigint; brk: bigint; argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
  auxv: bigint[];
  exePath: string;
}

export interface AddressSpacePlan {
  vmas: VmaSpec[];
  /** Path of each file a VMA maps, by the VMA's shmid (file id). */
  filePaths: Map<number, string>;
  /** Every page with data (to know which VMAs get pages). */
  runs: PageRun[];
  /** Where the pages are: this image set's pages image and, for incremental dumps, its parents'. */
  pageSources: PageSource[];
  mm: MmFields;
  /** The fd in stasis of the shared memory object a shared anonymous or memfd VMA maps. */
  shmemFd?: (v: VmaSpec) => number;
}

/** A free range of `size` bytes in both layouts, between 4 GiB and the top of user space. */
export function findScratch(ranges: { start: bigint; end: bigint }[], size: bigint): bigint {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let cursor = 0x100000000n;
  for (const r of sorted) {
    if (r.start >= cursor + size + PAGE) break;
    if (r.end > cursor) cursor = r.end + PAGE;
  }
  if (cursor + size > TASK_SIZE) throw new StasisError('E_RESTORE_FAILED', 'No free address range for the restore scratch area');
  return cursor;
}

function readMaps(pid: number): { start: bigint; end: bigint }[] {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [s, e] = (l.split(' ')[0] ?? '').split('-');
      return { start: BigInt(`0x${s}`), end: BigInt(`0x${e}`) };
    })
    .filter((r) => r.end <= TASK_SIZE);
}

export function rebuildAddressSpace(inj: Injector, plan: AddressSpacePlan): { scratch: bigint; scratchSize: number } {
  const pid = inj.pid;
  const scratch = findScratch([...readMaps(pid), ...plan.vmas], BigInt(SCRATCH_SIZE));
  inj.must('mmap', scratch, SCRATCH_SIZE, PROT.READ | PROT.WRITE | PROT.EXEC, MAP.PRIVATE | MAP.ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  inj.relocateCode(scratch);
  // The upper half is left to the threads restore creates (restore-task.ts).
  inj.useScratch(scratch + PAGE, SCRATCH_SIZE / 2 - Number(PAGE));

  // Everything of the stub goes, the vDSO and vvar included.
  inj.must('munmap', 0, scratch);
  inj.must('munmap', scratch + BigInt(SCRATCH_SIZE), TASK_SIZE - scratch - BigInt(SCRATCH_SIZE));

  const filled = new Set<VmaSpec>();
  // A run may cross from one VMA into the next (adjacent areas with other protections).
  for (const r of plan.runs) {
    const end = r.vaddr + BigInt(r.nrPages) * PAGE;
    for (const v of plan.vmas) if (v.start < end && r.vaddr < v.end) filled.add(v);
  }
  mapVmas(inj, plan, filled);
  fillPages(inj, plan);
  for (const v of filled) {
    if (!(v.prot & PROT.WRITE)) inj.must('mprotect', v.start, v.end - v.start, v.prot);
  }
  for (const v of plan.vmas) applyAdvice(inj, v);
  mapVdso(inj, plan.vmas);
  setMmFields(inj, plan.mm);
  return { scratch, scratchSize: SCRATCH_SIZE };
}

function openInTask(inj: Injector, path: string, flags: number): number {
  inj.resetScratch();
  const r = inj.call('openat', AT_FDCWD, inj.putString(path), flags | O_CLOEXEC, 0);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open ${path} in pid ${inj.pid}: errno ${-r}`);
  return Number(r);
}

function mapVmas(inj: Injector, plan: AddressSpacePlan, filled: Set<VmaSpec>): void {
  const fds = new Map<string, number>();
  try {
    for (const v of plan.vmas) {
      if (!isMappedByRestore(v)) continue;
      const prot = filled.has(v) ? v.prot | PROT.WRITE : v.prot;
      const keep = v.flags & (MAP.SHARED | MAP.PRIVATE | MAP.ANONYMOUS | MAP.GROWSDOWN | MAP.NORESERVE);
      let fd = -1;
      if (isShmemVma(v)) {
        fd = pullShmem(inj, plan, v, fds);
      } else if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) {
        const path = plan.filePaths.get(Number(v.shmid));
        if (path === undefined) throw new StasisError('E_CORRUPT', `VMA at 0x${v.start.toString(16)} names file ${v.shmid}, which the image lacks`);
        const mode = (v.fdflags & 3) === O_RDWR ? O_RDWR : O_RDONLY;
        const key = `${mode}:${path}`;
        fd = fds.get(key) ?? openInTask(inj, path, mode);
        fds.set(key, fd);
      }
      const r = inj.call('mmap', v.start, v.end - v.start, prot, (fd >= 0 ? keep & ~MAP.ANONYMOUS : keep) | MAP_FIXED, fd, v.pgoff);
      if (r !== BigInt.asIntN(64, v.start)) {
        throw new StasisError('E_RESTORE_FAILED', `Cannot map 0x${v.start.toString(16)}-0x${v.end.toString(16)} in pid ${inj.pid}: mmap returned ${r}`);
      }
    }
  } finally {
    for (const fd of fds.values()) inj.call('close', fd);
  }
}

/** The task's fd for a shared memory object of stasis: pidfd_getfd through a pidfd of stasis, both kept in `fds`. */
function pullShmem(inj: Injector, plan: AddressSpacePlan, v: VmaSpec, fds: Map<string, number>): number {
  if (!plan.shmemFd) throw new StasisError('E_CORRUPT', `Shared mapping at 0x${v.start.toString(16)} of pid ${inj.pid} has no object`);
  const toolFd = plan.shmemFd(v);
  const key = `shmem:${toolFd}`;
  const have = fds.get(key);
  if (have !== undefined) return have;
  let pidfd = fds.get('pidfd');
  if (pidfd === undefined) {
    const r = inj.call('pidfd_open', process.pid, 0);
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open a pidfd of stasis in pid ${inj.pid}: errno ${-r}`);
    pidfd = Number(r);
    fds.set('pidfd', pidfd);
  }
  const r = inj.call('pidfd_getfd', pidfd, toolFd, 0);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot take shared memory fd ${toolFd} of stasis into pid ${inj.pid}: errno ${-r}`);
  fds.set(key, Number(r));
  return Number(r);
}

function fillPages(inj: Injector, plan: AddressSpacePlan): void {
  for (const src of plan.pageSources) fillFrom(inj, src);
}

/** One preadv per stretch of the file read without a gap (up to 1024 runs each). */
function fillFrom(inj: Injector, src: PageSource): void {
  if (src.reads.length === 0) return;
  const fd = openInTask(inj, src.path, O_RDONLY);
  try {
    for (let i = 0; i < src.reads.length; ) {
      const fileOff = src.reads[i]!.off;
      let end = fileOff;
      let j = i;
      while (j < src.reads.length && j - i < IOV_MAX && src.reads[j]!.off === end) end += src.reads[j++]!.nrPages * Number(PAGE);
      const batch = src.reads.slice(i, j);
      const iov = Buffer.alloc(batch.length * 16);
      batch.forEach((r, k) => {
        iov.writeBigUInt64LE(r.vaddr, k * 16);
        iov.writeBigUInt64LE(BigInt(r.nrPages) * PAGE, k * 16 + 8);
      });
      inj.resetScratch();
      const total = BigInt(end - fileOff);
      const n = inj.call('preadv', fd, inj.put(iov), batch.length, fileOff);
      if (n !== total) {
        throw new StasisError('E_TRUNCATED', `Pages image ${src.path} is short: read ${n} of ${total} bytes at offset ${fileOff}`);
      }
      i = j;
    }
  } finally {
    inj.call('close', fd);
  }
}

function applyAdvice(inj: Injector, v: VmaSpec): void {
  if (!isMappedByRestore(v) || !v.madv) return;
  for (let advice = 0; advice < 64; advice++) {
    if (v.madv & (1n << BigInt(advice))) inj.call('madvise', v.start, v.end - v.start, advice);
  }
}

function mapVdso(inj: Injector, vmas: VmaSpec[]): void {
  const special = vmas.filter((v) => v.status & (VMA.VDSO | VMA.VVAR));
  if (special.length === 0) return;
  const start = special.reduce((m, v) => (v.start < m ? v.start : m), special[0]!.start);
  const r = inj.call('arch_prctl', ARCH_MAP_VDSO_64, start);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot map the vDSO at 0x${start.toString(16)} in pid ${inj.pid}: errno ${-r}`);
  const now = fs.readFileSync(`/proc/${inj.pid}/maps`, 'utf8');
  for (const v of special) {
    if (!now.includes(`${v.start.toString(16)}-${v.end.toString(16)} `)) {
      throw new StasisError('E_UNSUPPORTED', `This kernel's vDSO layout differs from the image's (0x${v.start.toString(16)}-0x${v.end.toString(16)})`);
    }
  }
}

function setMmFields(inj: Injector, mm: MmFields): void {
  const exeFd = openInTask(inj, mm.exePath, O_RDONLY);
  try {
    inj.resetScratch();
    const auxv = Buffer.alloc(mm.auxv.length * 8);
    mm.auxv.forEach((x, i) => auxv.writeBigUInt64LE(x, i * 8));
    const auxvAddr = inj.put(auxv);
    const map = Buffer.alloc(104);
    [mm.startCode, mm.endCode, mm.startData, mm.endData, mm.startBrk, mm.brk, mm.startStack,
      mm.argStart, mm.argEnd, mm.envStart, mm.envEnd, auxvAddr].forEach((x, i) => map.writeBigUInt64LE(x, i * 8));
    map.writeUInt32LE(auxv.length, 96);
    map.writeUInt32LE(exeFd, 100);
    const r = inj.call('prctl', PR_SET_MM, PR_SET_MM_MAP, inj.put(map), 104, 0);
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `PR_SET_MM_MAP failed in pid ${inj.pid} with errno ${-r}`);
  } finally {
    inj.call('close', exeFd);
  }
}

export function setComm(inj: Injector, comm: string): void {
  inj.resetScratch();
  inj.must('prctl', PR_SET_NAME, inj.put(Buffer.from(comm.slice(0, 15) + '\0')), 0, 0, 0);
}
