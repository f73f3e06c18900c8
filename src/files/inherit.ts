// CRIU's --inherit-fd fd[N]:KEY at restore: the files of the images that KEY names are not
// made anew; every fd on them gets stasis's own fd N (the caller's: runc hands a restored
// container its new stdio pipes so). KEY is the name CRIU gives the file (its file_desc_ops
// name): `pipe:[ID]` for a pipe, a regular file's or FIFO's path without its leading `/`.
// As CRIU (pipes.c open_pipe, files-reg.c open_path): a pipe is reopened through
// /proc/self/fd/N with the image's access mode and its contents in the images are not
// written (they were the old pipe's, which its other end outside has read or will); a file
// gets a dup of N, sharing its offset.
import fs from 'node:fs';
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { fcntl, openat, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { Log } from '../log.js';

const AT_FDCWD = -100, O_WRONLY = 1, O_ACCMODE = 3, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030, ENXIO = 6;

/** The inherited fds of one restore, by key, and the keys some file took. */
export class InheritedFds {
  private readonly used = new Set<string>();
  private constructor(private readonly byKey: ReadonlyMap<string, number>) {}

  /** Checks that every fd is open in this process (CRIU's fstat). A key given twice takes its first fd, as CRIU's lookup does (runc gives stdout's and stderr's pipe twice when they are one). */
  static from(list: readonly { fd: number; key: string }[]): InheritedFds {
    const byKey = new Map<string, number>();
    for (const { fd, key } of list) {
      const what = `--inherit-fd fd[${fd}]:${key}`;
      if (!Number.isInteger(fd) || fd < 0 || !key) throw new StasisError('E_BAD_ARGS', `Invalid ${what}: expected fd[N]:KEY`);
      try {
        fs.fstatSync(fd);
      } catch (err) {
        throw new StasisError('E_BAD_ARGS', `Cannot use ${what}: fd ${fd} is not open in the restoring process (pid ${process.pid})`, { cause: err });
      }
      if (!byKey.has(key)) byKey.set(key, fd);
    }
    return new InheritedFds(byKey);
  }

  get size(): number {
    return this.byKey.size;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** The fd given for `key`, marking it used. */
  take(key: string): number | undefined {
    const fd = this.byKey.get(key);
    if (fd !== undefined) this.used.add(key);
    return fd;
  }

  /** As CRIU, a key no file of the images has is ignored; it is logged. */
  logUnused(log: Log | undefined): void {
    for (const [key, fd] of this.byKey) if (!this.used.has(key)) log?.warn(`--inherit-fd fd[${fd}]:${key}: no file of the images is ${key}; fd ${fd} is not used`);
  }
}

/** CRIU's key of a path in the images: `/foo` is `foo`, `/` is `.` (collect_one_regfile). */
export const pathKey = (name: string) => (name === '/' ? '.' : name.replace(/^\//, ''));

/** A dup of the inherited fd, close-on-exec in stasis (the task's own flags are set when it is installed). */
export function dupInherited(fd: number): number {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/** A pipe end of the image reopened from the inherited fd with its access mode (non-blocking: a write end opens only while someone reads). */
export function reopenInheritedPipe(e: FileEntry, fd: number, key: string): number {
  const flags = e.pipe?.flags ?? 0;
  if (!fs.fstatSync(fd).isFIFO()) throw new StasisError('E_RESTORE_FAILED', `Cannot give ${key} (file ${e.id}) fd ${fd} of --inherit-fd: it is not a pipe`);
  try {
    return openat(AT_FDCWD, `/proc/self/fd/${fd}`, (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
  } catch (err) {
    const why = err instanceof SyscallError && err.errno === ENXIO && (flags & O_ACCMODE) === O_WRONLY
      ? 'nobody holds its read end' : err instanceof SyscallError ? err.code : String(err);
    throw new StasisError('E_RESTORE_FAILED', `Cannot reopen fd ${fd} of --inherit-fd for ${key} (file ${e.id}): ${why}`, { cause: err });
  }
}
