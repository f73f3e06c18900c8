// The library surface's option and result types.

export interface Progress {
  phase: string;
  done: number;
  total: number;
}

export interface DumpOptions {
  pid: number;
  imagesDir: string;
  /** Leave the tree running after the dump (default: kill it). */
  leaveRunning?: boolean;
  /** The task's controlling terminal is re-attached to the restoring terminal. */
  shellJob?: boolean;
  /** Largest deleted or replaced file whose contents the image keeps, in bytes (default 1 MiB, CRIU's). */
  ghostLimit?: number;
  /**
   * The previous image set (a pre-dump or a dump), relative to `imagesDir` unless absolute,
   * as CRIU's --prev-images-dir: pages unchanged since are in_parent entries.
   */
  prevImagesDir?: string | undefined;
  /** Track memory changes after this dump, so that a later dump can use it as its parent (with leaveRunning). */
  trackMem?: boolean;
  /** The dirty-tracking backend; 'auto' (default) takes the best the kernel offers. */
  trackBackend?: TrackBackend | undefined;
  onProgress?: ((p: Progress) => void) | undefined;
}

export type TrackBackend = 'auto' | 'uffd' | 'soft-dirty' | 'hash';

export interface PreDumpOptions {
  pid: number;
  imagesDir: string;
  /** The previous pre-dump, relative to `imagesDir` unless absolute (chains of pre-dumps). */
  prevImagesDir?: string | undefined;
  trackBackend?: TrackBackend | undefined;
  onProgress?: ((p: Progress) => void) | undefined;
}

export interface PreDumpResult {
  pids: number[];
  pagesScanned: number;
  pagesWritten: number;
  /** Pages left to the parent image set (unchanged since it). */
  pagesSkippedParent: number;
  imageBytes: number;
  /** The dirty-tracking backend that tracks the tree from now on. */
  trackBackend: string | null;
  /** From the start of freezing until the tree ran again. */
  downtimeMs: number;
  totalMs: number;
}

export interface DumpResult {
  pids: number[];
  pagesScanned: number;
  pagesWritten: number;
  /** Shared memory objects (shmem inodes) dumped once each, and their pages. */
  shmemObjects: number;
  shmemPagesScanned: number;
  shmemPagesWritten: number;
  imageBytes: number;
  kcmpCalls: number;
  freezeMs: number;
  frozenMs: number;
  totalMs: number;
  /** Pages left to the parent image set (unchanged since it). */
  pagesSkippedParent: number;
  /** From the start of freezing until the tree was thawed or killed. */
  downtimeMs: number;
  /** The dirty-tracking backend that told changed pages from unchanged ones, if any. */
  trackBackend: string | null;
}

export interface RestoreOptions {
  imagesDir: string;
  /** Detach and leave the tree running (default: wait for the root task to exit). */
  detach?: boolean;
  shellJob?: boolean;
  onProgress?: ((p: Progress) => void) | undefined;
}

export type ExitStatus = { kind: 'exited'; code: number } | { kind: 'signaled'; signal: number };

export interface RestoreResult {
  pid: number;
  pids: number[];
  /** Present when not detached: how the root task ended. */
  exit?: ExitStatus;
  totalMs: number;
}
