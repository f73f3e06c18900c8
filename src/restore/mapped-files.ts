// The files the tasks' VMAs map, opened in a task for its mmap. A file the image names by
// path is opened there by that path; a file kept as a ghost or by a temporary link (it was
// deleted, or another file took its path) is gone by the time the tasks are rebuilt, so it
// was opened in stasis while its ghost existed (OpenFiles.open's `mapped`) and is taken with
// pidfd_getfd: every mapping of one ghost, and every fd of it, share that one inode.
import { failedWith, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { VMA, isShmemVma, type VmaSpec } from '../mem/vma.js';
import type { OpenFiles, MappedOpen } from './open-files.js';
import { pidfdOfStasis } from './install-fds.js';
import type { FdCourier } from './fd-courier.js';
import { regPath, type ImageSet } from './read-images.js';
import { openInTask } from './address-space.js';

const O_RDONLY = 0, O_RDWR = 2;

/** The mode a file VMA's file is opened with (CRIU's VmaEntry.fdflags). */
export function mapMode(v: VmaSpec): number {
  return (v.fdflags & 3) === O_RDWR ? O_RDWR : O_RDONLY;
}

export function isFileVma(v: VmaSpec): boolean {
  return (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) !== 0 && !isShmemVma(v);
}

/** The mapped files of the image that must be opened while the ghosts exist (remapped ones). */
export function remappedMaps(vmasOf: (VmaSpec[])[], isRemapped: (fileId: number) => boolean): MappedOpen[] {
  const out = new Map<string, MappedOpen>();
  for (const vmas of vmasOf) {
    for (const v of vmas) {
      if (!isFileVma(v) || !isRemapped(Number(v.shmid))) continue;
      const m = { id: Number(v.shmid), mode: mapMode(v) };
      out.set(`${m.id}:${m.mode}`, m);
    }
  }
  return [...out.values()];
}

export class MappedFiles {
  /**
   * `remapOf` tells a file's remap (restore's GhostRestorer), so that files of one ghost are
   * one file; `shmemFd` the fd in stasis of the shared memory object a VMA maps.
   */
  constructor(
    private readonly set: ImageSet, private readonly files?: OpenFiles,
    private readonly remapOf: (fileId: number) => { id: number; type: number } | undefined = () => undefined,
    private readonly shmemFd?: (v: VmaSpec) => number,
  ) {}

  /** What a VMA maps, across tasks (each has its own file id for a file): its path, its remap, or its object. */
  identity(v: VmaSpec): string {
    if (isShmemVma(v)) return `shmem:${v.status & VMA.MEMFD ? 'memfd' : 'anon'}:${v.shmid}`;
    const id = Number(v.shmid);
    const r = this.remapOf(id);
    return r ? `remap:${r.type}:${r.id}` : `path:${regPath(this.set, id)}`;
  }

  /** Where two VMAs of a task may share one fd: same file object and mode. */
  key(v: VmaSpec): string {
    return `file:${v.shmid}:${mapMode(v)}`;
  }

  /**
   * Opens the file (or shared memory object) VMA `v` maps in the task; returns the task's fd
   * (close-on-exec). A packet socket's rings (a SOCKET area) are mapped from the socket stasis
   * made for its file.
   */
  open(inj: Injector, v: VmaSpec, stasisPidfd?: number, courier?: FdCourier): number {
    const id = Number(v.shmid), mode = mapMode(v);
    const shmem = isShmemVma(v), socket = (v.status & VMA.SOCKET) !== 0;
    if (shmem && !this.shmemFd) throw new StasisError('E_CORRUPT', `The mapping at 0x${v.start.toString(16)} of pid ${inj.pid} names shared memory the images lack`);
    if (socket && !this.files) throw new StasisError('E_CORRUPT', `The socket mapping at 0x${v.start.toString(16)} of pid ${inj.pid} names file ${id}, which is not open`);
    if (!shmem && !socket) return this.openFile(inj, id, mode, stasisPidfd, courier);
    const tool = shmem ? this.shmemFd!(v) : this.files!.get(id);
    return this.take(inj, tool, shmem ? `shared memory object ${v.shmid}` : `socket ${id}`, stasisPidfd, courier);
  }

  /** Opens file `id` of the image in the task: by its path there, or taken from stasis where stasis opened it (a ghost, a file of another mount namespace). */
  openFile(inj: Injector, id: number, mode: number, stasisPidfd?: number, courier?: FdCourier): number {
    const tool = this.files?.mapped(id, mode);
    if (tool === undefined) return openInTask(inj, regPath(this.set, id), mode);
    return this.take(inj, tool, `the mapped file ${regPath(this.set, id)}`, stasisPidfd, courier);
  }

  private take(inj: Injector, tool: number, what: string, stasisPidfd?: number, courier?: FdCourier): number {
    const pidfd = pidfdOfStasis(inj, stasisPidfd);
    if (pidfd < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open a pidfd of stasis in pid ${inj.pid}: ${failedWith(pidfd)}`);
    try {
      const r = courier ? courier.take(inj, tool) : inj.call('pidfd_getfd', pidfd, tool, 0);
      if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot take ${what} (fd ${tool} of stasis) into pid ${inj.pid}: ${failedWith(r)}`);
      return Number(r);
    } finally {
      inj.call('close', pidfd);
    }
  }
}
