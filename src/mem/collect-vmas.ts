// From /proc/PID/smaps to the image's VMA descriptions: the kind of every area (status
// bits), how to map it again (MAP_* flags, the file and the mode to open it with) and the
// advice given to it (VmFlags -> MADV_* bits).
import { vmaFlags, type SmapsEntry } from '../proc/index.js';
import { StasisError } from '../errors.js';
import { VMA, MAP, PROT, MADV, type VmaSpec } from './vma.js';

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
  return smaps.map((e) => {
    const f = vmaFlags(e);
    const prot = (e.perms.read ? PROT.READ : 0) | (e.perms.write ? PROT.WRITE : 0) | (e.perms.exec ? PROT.EXEC : 0);
    const where = `0x${e.start.toString(16)}-0x${e.end.toString(16)} (${e.path || 'anonymous'}) of pid ${pid}`;
    const base: VmaSpec = {
      start: e.start, end: e.end, pgoff: 0n, shmid: 0n, prot, flags: 0, status: VMA.REGULAR, madv: advice(e), fdflags: 0,
    };
    const growsDown = f.growsDown ? MAP.GROWSDOWN : 0;
    const noReserve = f.noReserve ? MAP.NORESERVE : 0;
    if (e.path === '[vsyscall]') return { vma: { ...base, status: VMA.VSYSCALL, flags: MAP.PRIVATE | MAP.ANONYMOUS } };
    if (e.path === '[vdso]') return { vma: { ...base, status: VMA.REGULAR | VMA.VDSO, flags: MAP.PRIVATE | MAP.ANONYMOUS } };
    if (e.path === '[vvar]' || e.path === '[vvar_vclock]') {
      return { vma: { ...base, status: VMA.REGULAR | VMA.VVAR, flags: MAP.PRIVATE | MAP.ANONYMOUS } };
    }
    if (f.io || f.pfnMap) throw new StasisError('E_UNSUPPORTED', `Cannot dump device memory at ${where}`);
    if (f.hugetlb) throw new StasisError('E_UNSUPPORTED', `Cannot dump hugetlbfs memory at ${where} yet`);
    if (f.shadowStack) throw new StasisError('E_UNSUPPORTED', `Cannot dump the shadow stack at ${where} yet`);
    // Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, or a shared mapping of /dev/zero) is
    // a shmem object the kernel names "/dev/zero (deleted)"; shmid is its inode until
    // shmem-dump.ts names the objects of the whole tree. A memfd mapped shared is the same
    // kind of object under its own name (CRIU: a FILE_SHARED | MEMFD area).
    if (e.perms.shared && ((e.path === '/dev/zero' && e.deleted) || e.path.startsWith('[anon_shmem:'))) {
      return { vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.ANON_SHARED, flags: MAP.SHARED | MAP.ANONYMOUS | noReserve, fdflags: O_RDWR } };
    }
    if (e.perms.shared && e.path.startsWith('/memfd:')) {
      const mayWrite = e.vmFlags.has('mw');
      return {
        vma: { ...base, pgoff: e.offset, shmid: e.inode, status: VMA.REGULAR | VMA.FILE_SHARED | VMA.MEMFD, flags: MAP.SHARED | noReserve, fdflags: mayWrite ? O_RDWR : O_RDONLY },
      };
    }
    const isFile = e.path.startsWith('/') && e.inode !== 0n;
    if (!isFile) {
      if (e.perms.shared) throw new StasisError('E_UNSUPPORTED', `Cannot dump shared anonymous memory at ${where} yet`);
      const kind = e.path === '[heap]' ? VMA.HEAP : e.path === '[stack]' ? VMA.STACK : 0;
      return {
        vma: { ...base, status: VMA.REGULAR | VMA.ANON_PRIVATE | kind, flags: MAP.PRIVATE | MAP.ANONYMOUS | growsDown | noReserve },
      };
    }
    if (e.deleted || e.path.startsWith('/memfd:') || e.path.startsWith('/SYSV') || e.path === '/dev/zero') {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump the mapping of a deleted file, memfd or shared memory at ${where} yet`);
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
  });
}
