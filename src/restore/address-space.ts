// Turning a fresh task (a copy of its stub) into the restored task's address space, with
// injected syscalls only: a scratch area where neither layout has anything, everything else
// unmapped, every VMA mapped at its place, pages read in by the task itself (one preadv per
// 1024 runs: the kernel copies straight from the page cache), protections and advice put
// back, the vDSO mapped where it was, and the mm fields set with PR_SET_MM_MAP.
import fs from 'node:fs';
import { failedWith, SyscallError, vmWritev, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { pidfdOfStasis } from './install-fds.js';
import type { FdCourier } from './fd-courier.js';
import { VMA, MAP, PROT, isMappedByRestore, isShmemVma, type VmaSpec } from '../mem/vma.js';
import { STASIS_PIDFD } from './create-task.js';
import type { PageSource } from '../mem/page-chain.js';
import { MAP_HUGETLB, HUGE_SIZE_MASK } from '../mem/hugetlb.js';
import { readsOutside, type Premap } from './cow-premap.js';
import type { MappedFiles } from './mapped-files.js';

const TASK_SIZE = 0x7ffffffff000n;
const SCRATCH_SIZE = 1 << 20;
const PAGE = 4096n;
const IOV_MAX = 1024;
const O_RDONLY = 0, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const MAP_FIXED = 0x10, MAP_FIXED_NOREPLACE = 0x100000;
const ENOMEM = -12n;
const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
const ARCH_MAP_VDSO_64 = 0x2003;
const MADV_GUARD_INSTALL = 102;
const PR_SET_MM = 35, PR_SET_MM_MAP = 14, PR_SET_NAME = 15;

export interface MmFields {
  startCode: bigint; endCode: bigint; startData: bigint; endData: bigint; startStack: bigint;
  startBrk: bigint; brk: bigint; argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
  auxv: bigint[];
  exePath: string;
  exeFileId: number;
}

export interface AddressSpacePlan {
  vmas: VmaSpec[];
  /** The task's inherited pidfd of stasis, in a pid namespace of its own (NewTask.stasisPidfd). */
  stasisPidfd?: number | undefined;
  /** Where stasis's files come from instead, in a user namespace below stasis's (NewTask.courier). */
  courier?: FdCourier | undefined;
  /** Opens the file a VMA maps in the task. */
  mapped: MappedFiles;
  /** The VMAs that hold a page with data (areasWithPages() of the task's runs). */
  withPages: ReadonlySet<VmaSpec>;
  /** Where the pages are: this image set's pages image and, for incremental dumps, its parents' (less the lazy areas' of restore --lazy-pages: mem/lazy-pages.ts fills those once the task runs). */
  pageSources: PageSource[];
  mm: MmFields;
  /** The fd in stasis of the shared memory object a shared anonymous or memfd VMA maps. */
  shmemFd?: (v: VmaSpec) => number;
  /** Areas premapped with their pages while the tree was made (shared copy-on-write with a parent or child): moved into place. */
  premapped?: Premap[];
  /** Guard regions (MADV_GUARD_INSTALL) inside the VMAs. */
  guards?: { start: bigint; end: bigint }[];
  /** Work of stasis's own done while the task's preadv of its pages runs (fillFrom); false once there is none. */
  meanwhile?: () => boolean;
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
  inj.relocateCode(scratch, true); // its first page is code only: callMany()'s loop goes there
  // The upper half is left to the threads restore creates (restore-task.ts).
  inj.useScratch(scratch + PAGE, SCRATCH_SIZE / 2 - Number(PAGE));

  // Premapped areas move into place (mremap keeps their pages, shared with other tasks).
  const premapped = plan.premapped ?? [];
  const moved = new Set(premapped.map((p) => p.vma));
  for (const p of premapped) {
    const len = p.vma.end - p.vma.start;
    const r = inj.call('mremap', p.at, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, p.vma.start);
    if (r !== p.vma.start) throw new StasisError('E_RESTORE_FAILED', `Cannot move the premapped 0x${p.vma.start.toString(16)}-0x${p.vma.end.toString(16)} into place in pid ${pid}: ${failedWith(r)}`);
  }
  // Everything else of the stub goes, the vDSO and vvar included.
  const keep = [{ start: scratch, end: scratch + BigInt(SCRATCH_SIZE) }, ...premapped.map((p) => p.vma)].sort((a, b) => (a.start < b.start ? -1 : 1));
  let at = 0n;
  for (const k of [...keep, { start: TASK_SIZE, end: TASK_SIZE }]) {
    if (k.start > at) inj.must('munmap', at, k.start - at);
    if (k.end > at) at = k.end;
  }

  // A run may cross from one VMA into the next (adjacent areas with other protections).
  const filled = new Set([...plan.withPages].filter((v) => !moved.has(v)));
  mapVmas(inj, plan, filled, moved);
  fillPages(inj, plan, [...moved]);
  const protect = [...[...filled].filter((v) => !(v.prot & PROT.WRITE)), ...[...moved].filter((v) => v.prot !== (PROT.READ | PROT.WRITE))];
  inj.resetScratch();
  inj.callMany(protect.map((v) => ['mprotect', [v.start, v.end - v.start, v.prot]] as const))  .forEach((r) => {
    if (r < 0n) throw new SyscallError('mprotect', Number(-r), `injected in pid ${pid}`);
  });
  inj.resetScratch();
  inj.callMany(plan.vmas.flatMap(advice));
  // Once the pages are in: installing a guard drops what its pages held (they held nothing).
  for (const g of plan.guards ?? []) {
    const r = inj.call('madvise', g.start, g.end - g.start, MADV_GUARD_INSTALL);
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot install the guard region 0x${g.start.toString(16)}-0x${g.end.toString(16)} in pid ${pid}: ${failedWith(r)}`);
  }
  // Areas moved into place were mapped without MAP_LOCKED: locked now (while still root).
  for (const v of moved) if (v.flags & MAP.LOCKED) inj.must('mlock', v.start, v.end - v.start);
  mapVdso(inj, plan.vmas);
  setMmFields(inj, plan.mm, () => plan.mapped.openFile(inj, plan.mm.exeFileId, O_RDONLY, plan.stasisPidfd, plan.courier));
  return { scratch, scratchSize: SCRATCH_SIZE };
}

const nsOf = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

/**
 * Opens a file of stasis's (an image) in the task, read-only: by its path, or, for a task in
 * a mount namespace of its own, where the path leads elsewhere, opened by stasis and taken
 * with pidfd_getfd (through the pidfd of stasis it inherited in a pid namespace of its own).
 */
export function openImageInTask(inj: Injector, path: string): number {
  if (nsOf(inj.pid, 'mnt') === nsOf('self', 'mnt')) return openInTask(inj, path, O_RDONLY);
  const mine = fs.openSync(path, 'r');
  try {
    const pidfd = pidfdOfStasis(inj, nsOf(inj.pid, 'pid') === nsOf('self', 'pid') ? undefined : STASIS_PIDFD);
    if (pidfd < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open a pidfd of stasis in pid ${inj.pid}: ${failedWith(pidfd)}`);
    try {
      const r = inj.call('pidfd_getfd', pidfd, mine, 0);
      if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot take ${path} (fd ${mine} of stasis) into pid ${inj.pid}: ${failedWith(r)}`);
      return Number(r);
    } finally {
      inj.call('close', pidfd);
    }
  } finally {
    fs.closeSync(mine);
  }
}

export function openInTask(inj: Injector, path: string, flags: number): number {
  inj.resetScratch();
  const r = inj.call('openat', AT_FDCWD, inj.putString(path), flags | O_CLOEXEC, 0);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open ${path} in pid ${inj.pid}: ${failedWith(r)}`);
  return Number(r);
}

function mapVmas(inj: Injector, plan: AddressSpacePlan, filled: Set<VmaSpec>, moved: Set<VmaSpec>): void {
  const fds = new Map<string, number>();
  // The mmaps go in batches (callMany: one stop each), flushed before any other injected call.
  const pending: { v: VmaSpec; args: bigint[] }[] = [];
  const flush = () => {
    const rs = inj.callMany(pending.map((p) => ['mmap', p.args] as const));
    const batch = pending.splice(0);
    batch.forEach(({ v }, i) => {
      const r = rs[i]!;
      if (r !== BigInt.asIntN(64, v.start)) {
        const hint = v.flags & MAP_HUGETLB && r === ENOMEM ? ' (hugetlb memory: too few free huge pages, see nr_hugepages)' : '';
        throw new StasisError('E_RESTORE_FAILED', `Cannot map 0x${v.start.toString(16)}-0x${v.end.toString(16)} in pid ${inj.pid}: ${r < 0n && r > -4096n ? `mmap failed with ${failedWith(r)}${hint}` : `mmap returned 0x${BigInt.asUintN(64, r).toString(16)}`}`);
      }
    });
  };
  try {
    for (const v of plan.vmas) {
      if (!isMappedByRestore(v) || moved.has(v)) continue;
      const prot = filled.has(v) ? v.prot | PROT.WRITE : v.prot;
      // MAP_HUGETLB and its page size too: an anonymous area gets huge pages of that size, a hugetlb memfd's has them anyway.
      const keep = v.flags & (MAP.SHARED | MAP.PRIVATE | MAP.DROPPABLE | MAP.ANONYMOUS | MAP.GROWSDOWN | MAP.NORESERVE | MAP.LOCKED | MAP_HUGETLB | HUGE_SIZE_MASK);
      if (v.status & VMA.SYSVIPC) {
        flush();
        attachSysv(inj, v);
        continue;
      }
      let fd = -1;
      if (isShmemVma(v)) {
        flush();
        fd = pullShmem(inj, plan, v, fds);
      } else if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED | VMA.SOCKET)) {
        const key = plan.mapped.key(v);
        if (!fds.has(key)) flush();
        fd = fds.get(key) ?? plan.mapped.open(inj, v, plan.stasisPidfd, plan.courier);
        fds.set(key, fd);
      }
      pending.push({ v, args: [v.start, v.end - v.start, BigInt(prot), BigInt((fd >= 0 ? keep & ~MAP.ANONYMOUS : keep) | MAP_FIXED), BigInt(fd), BigInt(v.pgoff)] });
    }
    flush();
  } finally {
    pending.length = 0;
    for (const fd of fds.values()) inj.call('close', fd);
  }
}

const SHM_RDONLY = 0o10000, SHM_EXEC = 0o100000;

/**
 * A SysV segment attached again at its place (the segment was made in the tree's IPC
 * namespace before the tasks; ns/ipc-sysv.ts). shmat maps the whole segment: a VMA that is
 * only part of one (partly unmapped, or split by mprotect) gets it at its start less its
 * offset, the rest unmapped again.
 */
function attachSysv(inj: Injector, v: VmaSpec): void {
  const at = v.start - v.pgoff * PAGE;
  const flags = (v.prot & PROT.WRITE ? 0 : SHM_RDONLY) | (v.prot & PROT.EXEC ? SHM_EXEC : 0);
  const r = inj.call('shmat', v.shmid, at, flags);
  if (r !== at) {
    throw new StasisError('E_RESTORE_FAILED', `Cannot attach SysV shared memory segment ${v.shmid} at 0x${at.toString(16)} in pid ${inj.pid}: ${r < 0n && r > -4096n ? failedWith(r) : `shmat returned 0x${BigInt.asUintN(64, r).toString(16)}`}`);
  }
  const maps = fs.readFileSync(`/proc/${inj.pid}/maps`, 'utf8');
  const m = new RegExp(`^${at.toString(16)}-([0-9a-f]+) `, 'm').exec(maps);
  const end = m ? BigInt(`0x${m[1]}`) : v.end;
  if (at < v.start) inj.must('munmap', at, v.start - at);
  if (end > v.end) inj.must('munmap', v.end, end - v.end);
  if (v.prot !== (PROT.READ | (v.prot & (PROT.WRITE | PROT.EXEC)))) inj.must('mprotect', v.start, v.end - v.start, v.prot);
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
    const r = pidfdOfStasis(inj, plan.stasisPidfd);
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open a pidfd of stasis in pid ${inj.pid}: ${failedWith(r)}`);
    pidfd = Number(r);
    fds.set('pidfd', pidfd);
  }
  const r = plan.courier ? plan.courier.take(inj, toolFd) : inj.call('pidfd_getfd', pidfd, toolFd, 0);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot take shared memory fd ${toolFd} of stasis into pid ${inj.pid}: ${failedWith(r)}`);
  fds.set(key, Number(r));
  return Number(r);
}

function fillPages(inj: Injector, plan: AddressSpacePlan, moved: VmaSpec[]): void {
  for (const src of readsOutside(plan.pageSources, moved)) fillFrom(inj, src, plan.meanwhile);
}

/**
 * The pages of `src` into the task: the task's own preadv, one per stretch of the file read
 * without a gap (up to 1024 runs). From BOTH_ENDS bytes on, each of its calls is at most
 * TASK_CALL bytes, and while it runs stasis fills from the back a PIECE at a time (pread into
 * a buffer of its own, process_vm_writev into the task): the kernel's copy into fresh pages,
 * the bulk of a large restore, runs on both cores. What is left is segs[front, back): a call
 * takes its bytes off the front before it runs and stasis's pieces come off the back while it
 * runs, so the two never meet on a page. A piece stasis cannot write (short) stops its side:
 * the task does the rest. `meanwhile`: other work of stasis's, a step at a time, while a call
 * runs (after its pieces, if any); what it throws fails the fill once the call is done.
 */
export function fillFrom(inj: Injector, src: PageSource, meanwhile?: () => boolean): void {
  if (src.reads.n === 0) return;
  const fd = openImageInTask(inj, src.path);
  try {
    const r = src.reads;
    const segs: Stretch[] = Array.from({ length: r.n }, (_, i) => ({ vaddr: BigInt(r.page[i]! * PAGE_BYTES), len: r.count[i]! * PAGE_BYTES, off: r.off[i]! }));
    const both = segs.reduce((n, g) => n + g.len, 0) >= BOTH_ENDS;
    const ends = { front: 0, back: segs.length };
    const back = both ? fromTheBack(inj, src.path, segs, ends) : null;
    // Stasis's side of each call: pieces from the back, then its other work.
    const pump = back || meanwhile ? { step: () => !!back?.step() || !!meanwhile?.(), close: () => back?.close() } : null;
    try {
      while (ends.front < ends.back) {
        // The task's call: off the front, up to TASK_CALL bytes (filled from both ends) of the file read without a gap.
        const iov = Buffer.alloc(Math.min(IOV_MAX, ends.back - ends.front) * 16);
        const fileOff = segs[ends.front]!.off;
        const most = both ? TASK_CALL : Infinity;
        let n = 0, bytes = 0;
        while (ends.front < ends.back && n < IOV_MAX && bytes < most) {
          const g = segs[ends.front]!;
          if (g.off !== fileOff + bytes) break;
          const take = Math.min(g.len, most - bytes);
          iov.writeBigUInt64LE(g.vaddr, n * 16);
          iov.writeBigUInt64LE(BigInt(take), n * 16 + 8);
          n++;
          bytes += take;
          g.vaddr += BigInt(take);
          g.off += take;
          g.len -= take;
          if (g.len === 0) ends.front++;
        }
        inj.resetScratch();
        const args = [fd, inj.put(iov.subarray(0, n * 16)), n, fileOff] as const;
        const r = pump ? inj.callPumping('preadv', [...args], pump.step) : inj.call('preadv', ...args);
        if (r !== BigInt(bytes)) throw shortRead(src.path, r, bytes, fileOff);
      }
    } finally {
      pump?.close();
    }
  } finally {
    inj.call('close', fd);
  }
}

const PAGE_BYTES = Number(PAGE);
const BOTH_ENDS = 64 << 20;
const TASK_CALL = 32 << 20;
const PIECE = 2 << 20;

const shortRead = (file: string, n: bigint, want: number, off: number) =>
  new StasisError('E_TRUNCATED', `Pages image ${file} is short: read ${n} of ${want} bytes at offset ${off}`);

/** A stretch of pages still to fill: `len` bytes at `vaddr` in the task, from `off` in the file. */
interface Stretch { vaddr: bigint; len: number; off: number }

/** stasis's side of a two-ended fill: `step` writes one piece off the back of segs[front, back) (false: none left, or its side stopped). */
function fromTheBack(inj: Injector, file: string, segs: Stretch[], ends: { front: number; back: number }): { step: () => boolean; close: () => void } {
  const mine = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(PIECE);
  const remote = Buffer.alloc(IOV_MAX * 16);
  let stopped = false;
  // One piece: up to PIECE bytes of the file read without a gap.
  const step = (): boolean => {
    if (stopped || ends.front >= ends.back) return false;
    const parts: Stretch[] = [];
    let bytes = 0;
    for (let k = ends.back - 1; k >= ends.front && parts.length < IOV_MAX && bytes < PIECE; k--) {
      const g = segs[k]!;
      if (parts.length && g.off + g.len !== parts[parts.length - 1]!.off) break;
      const take = Math.min(g.len, PIECE - bytes);
      parts.push({ vaddr: g.vaddr + BigInt(g.len - take), len: take, off: g.off + g.len - take });
      bytes += take;
      if (take < g.len) break;
    }
    parts.reverse();
    const off = parts[0]!.off;
    const got = fs.readSync(mine, buf, 0, bytes, off);
    if (got !== bytes) throw shortRead(file, BigInt(got), bytes, off);
    parts.forEach((p, i) => {
      remote.writeBigUInt64LE(p.vaddr, i * 16);
      remote.writeBigUInt64LE(BigInt(p.len), i * 16 + 8);
    });
    if (vmWritev(inj.pid, buf, bytes, remote, parts.length) !== bytes) {
      stopped = true; // (written in part: the task writes the same bytes again)
      return false;
    }
    // Off the back: whole stretches, and the last one's tail.
    for (let left = bytes; left > 0; ) {
      const g = segs[ends.back - 1]!;
      const take = Math.min(g.len, left);
      g.len -= take;
      left -= take;
      if (g.len === 0) ends.back--;
    }
    return true;
  };
  return { step, close: () => fs.closeSync(mine) };
}

/** The madvise calls that give an area its advice again (their results are not checked, as before). */
function advice(v: VmaSpec): (readonly ['madvise', bigint[]])[] {
  if (!isMappedByRestore(v) || !v.madv) return [];
  const calls: (readonly ['madvise', bigint[]])[] = [];
  for (let a = 0; a < 64; a++) if (v.madv & (1n << BigInt(a))) calls.push(['madvise', [v.start, v.end - v.start, BigInt(a)]]);
  return calls;
}

function mapVdso(inj: Injector, vmas: VmaSpec[]): void {
  const special = vmas.filter((v) => v.status & (VMA.VDSO | VMA.VVAR));
  if (special.length === 0) return;
  const start = special.reduce((m, v) => (v.start < m ? v.start : m), special[0]!.start);
  const r = inj.call('arch_prctl', ARCH_MAP_VDSO_64, start);
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot map the vDSO at 0x${start.toString(16)} in pid ${inj.pid}: ${failedWith(r)}`);
  // The kernel's areas must tile the image's: CRIU writes [vvar] and [vvar_vclock] as one
  // VVAR area, stasis before format 3 wrote them apart.
  const now = fs.readFileSync(`/proc/${inj.pid}/maps`, 'utf8').split('\n').flatMap((l) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+) .*\s(\[vdso\]|\[vvar\]|\[vvar_vclock\])$/.exec(l);
    return m ? [{ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), vdso: m[3] === '[vdso]' }] : [];
  }).sort((a, b) => (a.start < b.start ? -1 : 1));
  const differs = (what: string) => new StasisError('E_UNSUPPORTED', `This kernel's vDSO layout differs from the image's (${what})`);
  for (const v of special) {
    let at = v.start;
    for (const k of now) {
      if (k.start !== at || k.end > v.end) continue;
      if (k.vdso !== ((v.status & VMA.VDSO) !== 0)) break;
      at = k.end;
    }
    if (at !== v.end) throw differs(`0x${v.start.toString(16)}-0x${v.end.toString(16)}`);
  }
  for (const k of now) {
    if (!special.some((v) => v.start <= k.start && k.end <= v.end)) throw differs(`0x${k.start.toString(16)}-0x${k.end.toString(16)} is not in the image`);
  }
}

function setMmFields(inj: Injector, mm: MmFields, openExe: () => number): void {
  const exeFd = openExe();
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
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `PR_SET_MM_MAP failed in pid ${inj.pid} with ${failedWith(r)}`);
  } finally {
    inj.call('close', exeFd);
  }
}

export function setComm(inj: Injector, comm: string): void {
  inj.resetScratch();
  inj.must('prctl', PR_SET_NAME, inj.put(Buffer.from(comm.slice(0, 15) + '\0')), 0, 0, 0);
}
