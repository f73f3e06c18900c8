// Opening the image's file objects in stasis, once each; tasks then pull them in with
// pidfd_getfd. A kind may need another object first (`retry`); a pass that opens nothing
// new while objects remain is a loop in the image and fails loudly.
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { FILE_KINDS, kindOfType, GhostRestorer, dupInherited, type FileKind, type OpenResult, type RestoreFileCtx } from '../files/index.js';
import { closeFd, openat, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';

const AT_FDCWD = -100, O_CLOEXEC = 0o2000000;

/** A regular file a VMA maps, and the mode (O_RDONLY, O_RDWR) its mapping was made with. */
export interface MappedOpen {
  id: number;
  mode: number;
}

/** The file from an fd of stasis, where --inherit-fd names it (CRIU's inherited_fd, asked before each kind opens its own). */
function openInherited(e: FileEntry, kind: FileKind, ctx: RestoreFileCtx): OpenResult | undefined {
  if (!ctx.inherit?.size) return undefined;
  const key = kind.inheritKey?.(e, ctx);
  const fd = key === undefined ? undefined : ctx.inherit.take(key);
  if (key === undefined || fd === undefined) return undefined;
  ctx.log?.info(`file ${e.id}: ${key} from fd ${fd} (--inherit-fd)`);
  return { status: 'done', fd: kind.openInherited ? kind.openInherited(e, fd, key) : dupInherited(fd) };
}

export class OpenFiles {
  readonly fds = new Map<number, number>();
  /** Files mapped by VMAs, opened here while their ghosts exist, by `id:mode`. */
  private readonly mapFds = new Map<string, number>();
  /** Ends the helpers that hold dead pids for files of their /proc/PID (after the tasks are made). */
  private readonly helpers: (() => void)[] = [];

  /** Opens `wanted` into a new set, or into `into` (files opened once some tasks exist). */
  static open(wanted: FileEntry[], fileCtx: RestoreFileCtx, into?: OpenFiles, mapped: MappedOpen[] = []): OpenFiles {
    const o = into ?? new OpenFiles();
    // Ghosts are unlinked once every file that uses one is open (or the opening failed).
    const ctx = {
      ...fileCtx, ghosts: fileCtx.ghosts ?? new GhostRestorer(fileCtx.imagesDir, fileCtx.holdPid), fdOf: (id: number) => o.fds.get(id),
    };
    let failed = false;
    try {
      let left = wanted;
      while (left.length) {
        const next: FileEntry[] = [];
        for (const e of left) {
          const kind = kindOfType(e.type);
          if (!kind) throw new StasisError('E_UNSUPPORTED', `Cannot restore file ${e.id}: its type ${e.type} is not supported`);
          const r = openInherited(e, kind, ctx) ?? kind.open(e, ctx);
          if (r.status === 'done') {
            o.fds.set(e.id, r.fd);
            ctx.log?.debug(`file ${e.id}: ${kind.name} opened as fd ${r.fd} of stasis`);
          } else next.push(e);
        }
        if (next.length === left.length) throw new StasisError('E_CORRUPT', `Files ${next.map((e) => e.id).join(', ')} wait on each other`);
        left = next;
      }
      for (const k of FILE_KINDS) k.settle?.(ctx);
      for (const m of mapped) o.openMapped(m, ctx);
      ctx.ghosts.unlinkLinks();
      return o;
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      for (const k of FILE_KINDS) k.finish?.(ctx);
      ctx.ghosts.unlinkAll();
      o.helpers.push(...ctx.ghosts.takeHelpers());
      if (failed && !into) o.close();
    }
  }

  /** A ghost a VMA maps (or a file kept by a temporary link), opened with the mapping's mode. */
  private openMapped(m: MappedOpen, ctx: RestoreFileCtx & { ghosts: GhostRestorer }): void {
    const key = `${m.id}:${m.mode}`;
    if (this.mapFds.has(key)) return;
    const e = ctx.files.get(m.id);
    if (!e?.reg) throw new StasisError('E_CORRUPT', `A memory area maps file ${m.id}, which is not a regular file of the image`);
    // (Through the root of its mount's namespace: the file of a task of another one, restore/nested-mounts.ts.)
    const name = ctx.ghosts.pathOf(e, ctx.files) ?? `${(e.reg.mntId !== undefined ? ctx.rootOf?.(e.reg.mntId) : undefined) ?? ctx.root ?? ''}${e.reg.name}`;
    try {
      this.mapFds.set(key, openat(AT_FDCWD, name, m.mode | O_CLOEXEC));
    } catch (err) {
      const why = err instanceof SyscallError ? err.code : String(err);
      throw new StasisError('E_RESTORE_FAILED', `Cannot reopen ${e.reg.name} (file ${m.id}) to map it: ${why}`, { cause: err });
    }
  }

  /** The fd in stasis of a mapped file opened by open()'s `mapped`, if it was. */
  mapped(id: number, mode: number): number | undefined {
    return this.mapFds.get(`${id}:${mode}`);
  }

  get(id: number): number {
    const fd = this.fds.get(id);
    if (fd === undefined) throw new StasisError('E_CORRUPT', `File ${id} was not opened`);
    return fd;
  }

  endHelpers(): void {
    for (const end of this.helpers.splice(0)) end();
  }

  close(): void {
    for (const fd of [...this.fds.values(), ...this.mapFds.values()]) closeFd(fd);
    this.fds.clear();
    this.mapFds.clear();
    this.endHelpers();
  }
}
