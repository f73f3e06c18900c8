// From /proc/PID/smaps to the image's VMA descriptions: the kind of every area (status
// bits), how to map it again (MAP_* flags, the file and the mode to open it with) and the
// advice given to it (VmFlags -> MADV_* bits).
import { vmaFlags, type SmapsEntry } from '../proc/index.js';
import { StasisError } from '../errors.js';
import { VMA, MAP, PROT, MADV, type VmaSpec } from './vma.js';
import { MAP_HUGETLB, HUGE_2MB, hugeSizeFlag } from './hugetlb.js';

const O_RDONLY = 0, O_RDWR = 2;
const MADV_RANDOM = 1, MADV_SEQUENTIAL = 2;

export interface CollectedVma {
  vma: VmaSpec;
  /** The mapped file's path, for file mappings. */
  path?: string;
}

function advice(e: SmapsEntry): bigint {
  const f = vmaFlags(e);
  let m = 0n;
  const set = (on: boolean, a: number) => {
    if (on) m |= 1n << BigInt(a);
  };
  set(f.random, MADV_RANDOM);
  set(f.sequential, MADV_SEQUENTIAL);
  set(f.dontFork, MADV.DONTFORK);
  set(f.dontDump, MADV.DONTDUMP);
  set(f.mergeable, MADV.MERGEABLE);
  set(f.hugepage, MADV.HUGEPAGE);
  set(f.noHugepage, MADV.NOHUGEPAGE);
  set(f.wipeOnFork, MADV.WIPEONFORK);
  return m;
}

/** Classifies every VMA of a task; throws E_UNSUPPORTED for kinds not handled yet. */
export function collectVmas(pid: number, smaps: SmapsEntry[]): CollectedVma[] {
  // A private mapping of shared hugetlb memory (through map_files) looks like private hugetlb
  // memory of its own, but its pages not copied are the object's: known by the shared inode.
  const sharedHuge = new Set(smaps.filter((e) => e.perms.shared && vmaFlags(e).hugetlb).map((e) => e.inode));
  return mergeVvar(smaps.map((e) => {
    const f = vmaFlags(e);
    const prot = (e.perms.read ? PROT.READ : 0) | (e.perms.write ? PROT.WRITE : 0) | (e.perms.exec ? PROT.EXEC : 0);
    const where = `0x${e.start.toString(16)}-0x${e.end.toString(16)} (${e.path || 'anonymous'}) of pid ${pid}`;
    const base: VmaSpec = {
      start: e.start, end: e.end, pgoff: 0n, shmid: 0n, prot, flags: 0, status: VMA.REGULAR, madv: advice(e), fdflags: 0,
    };
    const growsDown = f.growsDown ? MAP.GROWSDOWN : 0;
    // MAP_NORESERVE and MAP_LOCKED (mlock() sets VM_LOCKED as well: CRIU keeps it in flags too).
    const noReserve = (f.noReserve ? MAP.NORESERVE : 0) | (f.locked ? MAP.LOCKED : 0);
    // The kernel's areas carry ANON_PRIVATE, as CRIU marks them: its restore maps the vDSO
    // area as private memory, reads the dumped vDSO into it, and compares it with its own.
    if (e.path === '[vsyscall]') return { vma: { ...base, status: VMA.VSYSCALL | VMA.ANON_PRIVATE, flags: MAP.PRIVATE | MAP.ANONYMOUS } };
    if (e.path === '[vdso]') return { vma: { ...base, status: VMA.REGULAR | VMA.VDSO | VMA.ANON_PRIVATE, flags: MAP.PRIVATE | MAP.ANONYMOUS } };
    if (e.path === '[vvar]' || e.path === '[vvar_vclock]') {
      return { vma: { ...base, status: VMA.REGULAR | VMA.VVAR | VMA.ANON_PRIVATE, flags: MAP.PRIVATE | MAP.ANONYMOUS } };
    }
    // CRIU re-creates a ring with io_setup and copies it, but cannot see requests still in
    // flight (an IOCB_CMD_POLL waits forever): they would be lost without a word.
    if (e.path === '/[aio]') {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump the AIO ring (io_setup) at ${where}: requests still in flight in it are known to the kernel alone, and would be lost`);
    }
    if (f.io || f.pfnMap) throw new StasisError('E_UNSUPPORTED', `Cannot dump device memory at ${where}`);
    if (f.hugetlb && !e.perms.shared && e.path === '/anon_hugepage' && sharedHuge.has(e.inode)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump hugetlb memory at ${where}: it is a private mapping of shared hugetlb memory, not supported yet`);
    }
    if (f.hugetlb) return { vma: hugetlbVma(e, base, where, noReserve) };
    if (f.shadowStack) throw new StasisError('E_UNSUPPORTED', `Cannot dump the shadow stack at ${where} yet`);
    // Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, or a shared mapping of /dev/zero) is
    // a shmem object the kernel names "/dev/zero (deleted)"; shmid is its inode until
    // shmem-dump.ts names the objects of the whole tree. A memfd mapped shared is the same
    // kind of object under its own name (CRIU: a FILE_SHARED | MEMFD area).
    if (e.perms.shared && ((e.path === '/dev/zero' && e.deleted) || e.path.startsWith('[anon_shmem:'))) {
      return { vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.ANON_SHARED, flags: MAP.SHARED | MAP.ANONYMOUS | noReserve, fdflags: O_RDWR } };
    }
    // A SysV segment attached (shmat): the kernel names it "/SYSV<key> (deleted)", its inode
    // is the segment's id (CRIU's VMA_AREA_SYSVIPC; its pages are the segment's, in ipcns-shm).
    if (e.perms.shared && e.path.startsWith('/SYSV')) {
      return { vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.ANON_SHARED | VMA.SYSVIPC, flags: MAP.SHARED | MAP.ANONYMOUS, fdflags: O_RDWR } };
    }
    if (e.perms.shared && e.path.startsWith('/memfd:')) {
      const mayWrite = e.vmFlags.has('mw');
      return {
        vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.FILE_SHARED | VMA.MEMFD, flags: MAP.SHARED | noReserve, fdflags: mayWrite ? O_RDWR : O_RDONLY },
      };
    }
    // A memfd mapped private: its pages not written since are the memfd's (a write to the
    // memfd shows through them), those written are the task's own (CRIU: FILE_PRIVATE | MEMFD).
    if (!e.perms.shared && e.path.startsWith('/memfd:')) {
      return {
        vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.FILE_PRIVATE | VMA.MEMFD, flags: MAP.PRIVATE | growsDown | noReserve, fdflags: O_RDONLY },
      };
    }
    // A packet socket's rings mapped (CRIU's VMA_AREA_SOCKET): shmid is the socket's inode
    // until the dump names its file (dump/socket-maps.ts); the pages are the socket's.
    if (/^socket:\[\d+\]$/.test(e.path)) {
      if (e.anonymous > 0) throw new StasisError('E_UNSUPPORTED', `Cannot dump the socket mapping at ${where}: the task wrote to its private copy of some pages (${e.anonymous} kB), which the rings no longer share, not supported yet`);
      return { vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.SOCKET, flags: (e.perms.shared ? MAP.SHARED : MAP.PRIVATE) | noReserve, fdflags: O_RDWR } };
    }
    // Shared anonymous memory mapped private through its map_files link (zdtm shmemfd-priv):
    // the object's pages where not copied, as for a memfd. The object's kind is checked when
    // its pages are dumped (mem/shmem-dump.ts: a regular shmem file, not a /dev/zero device).
    if (!e.perms.shared && e.path === '/dev/zero' && e.deleted) {
      return {
        vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.FILE_PRIVATE | VMA.ANON_SHARED, flags: MAP.PRIVATE | growsDown | noReserve, fdflags: O_RDONLY },
      };
    }
    const isFile = e.path.startsWith('/') && e.inode !== 0n;
    if (!isFile) {
      if (e.perms.shared) throw new StasisError('E_UNSUPPORTED', `Cannot dump shared anonymous memory at ${where} yet`);
      const kind = e.path === '[heap]' ? VMA.HEAP : e.path === '[stack]' ? VMA.STACK : 0;
      if (f.droppable) return { vma: { ...base, status: VMA.REGULAR | VMA.ANON_PRIVATE, flags: MAP.DROPPABLE | MAP.ANONYMOUS | noReserve } };
      return {
        vma: { ...base, status: VMA.REGULAR | VMA.ANON_PRIVATE | kind, flags: MAP.PRIVATE | MAP.ANONYMOUS | growsDown | noReserve },
      };
    }
    // A deleted file is kept as a ghost by its mapping's file entry (dump/collect-task.ts).
    if (e.path.startsWith('/memfd:') || e.path.startsWith('/SYSV') || e.path === '/dev/zero') {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump the private mapping of shared memory at ${where} yet`);
    }
    if (e.perms.shared) {
      const mayWrite = e.vmFlags.has('mw');
      return {
        vma: { ...base, pgoff: e.offset, status: VMA.REGULAR | VMA.FILE_SHARED, flags: MAP.SHARED | noReserve, fdflags: mayWrite ? O_RDWR : O_RDONLY },
        path: e.path,
      };
    }
    return {
      vma: { ...base, pgoff: e.offset, status: VMA.REGULAR | VMA.FILE_PRIVATE, flags: MAP.PRIVATE | growsDown | noReserve, fdflags: O_RDONLY },
      path: e.path,
    };
  }));
}

/**
 * A hugetlb area, as CRIU keeps it: its kind as for small pages, its flags with MAP_HUGETLB and
 * the page size. Anonymous ones (the kernel names them "/anon_hugepage (deleted)") private or
 * shared, and memfds made with MFD_HUGETLB; what restore could not make again is refused.
 */
function hugetlbVma(e: SmapsEntry, base: VmaSpec, where: string, noReserve: number): VmaSpec {
  const page = e.sizes.get('KernelPageSize') ?? 0;
  if (page !== HUGE_2MB) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump hugetlb memory at ${where}: its pages are of ${page >> 10} kB, and stasis restores only 2048 kB ones`);
  }
  const huge = MAP_HUGETLB | hugeSizeFlag(page) | noReserve;
  const anon = e.path === '/anon_hugepage' && e.deleted;
  if (anon && e.perms.shared) {
    return { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.ANON_SHARED, flags: MAP.SHARED | MAP.ANONYMOUS | huge, fdflags: O_RDWR };
  }
  if (anon) return { ...base, status: VMA.REGULAR | VMA.ANON_PRIVATE, flags: MAP.PRIVATE | MAP.ANONYMOUS | huge };
  if (e.path.startsWith('/memfd:')) {
    if (e.perms.shared) {
      return { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.FILE_SHARED | VMA.MEMFD, flags: MAP.SHARED | huge, fdflags: e.vmFlags.has('mw') ? O_RDWR : O_RDONLY };
    }
    return { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.FILE_PRIVATE | VMA.MEMFD, flags: MAP.PRIVATE | huge, fdflags: O_RDONLY };
  }
  // A SysV segment made with SHM_HUGETLB: attached again by shmat, its pages and its
  // hugetlb_flag are the segment's (ns/ipc-sysv.ts); a private one cannot be made by shmat.
  if (e.path.startsWith('/SYSV') && e.perms.shared) {
    return { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.ANON_SHARED | VMA.SYSVIPC, flags: MAP.SHARED | MAP.ANONYMOUS | huge, fdflags: O_RDWR };
  }
  if (e.path.startsWith('/SYSV')) throw new StasisError('E_UNSUPPORTED', `Cannot dump hugetlb memory at ${where}: it is a private mapping of a SysV segment made with SHM_HUGETLB, not supported yet`);
  throw new StasisError('E_UNSUPPORTED', `Cannot dump hugetlb memory at ${where}: mappings of files on a hugetlbfs mount are not supported yet`);
}

/** [vvar] and [vvar_vclock] (Linux 6.12+) as one VVAR area, as CRIU writes them. */
function mergeVvar(vmas: CollectedVma[]): CollectedVma[] {
  const out: CollectedVma[] = [];
  for (const c of vmas) {
    const last = out[out.length - 1]?.vma;
    if (last && last.status & VMA.VVAR && c.vma.status & VMA.VVAR && last.end === c.vma.start && last.prot === c.vma.prot) last.end = c.vma.end;
    else out.push(c);
  }
  return out;
}

