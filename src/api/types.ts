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
  onProgress?: ((p: Progress) => void) | undefined;
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
