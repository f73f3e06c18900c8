// Opening the image's file objects in stasis, once each; tasks then pull them in with
// pidfd_getfd. A kind may need another object first (`retry`); a pass that opens nothing
// new while objects remain is a loop in the image and fails loudly.
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { FILE_KINDS, kindOfType, GhostRestorer, type RestoreFileCtx } from '../files/index.js';
import { closeFd } from '../sys/index.js';
import { StasisError } from '../errors.js';

export class OpenFiles {
  readonly fds = new Map<number, number>();

  static open(wanted: FileEntry[], fileCtx: RestoreFileCtx): OpenFiles {
    const o = new OpenFiles();
    // Ghosts are unlinked once every file that uses one is open (or the opening failed).
    const ctx = { ...fileCtx, ghosts: fileCtx.ghosts ?? new GhostRestorer(fileCtx.imagesDir) };
    try {
      let left = wanted;
      while (left.length) {
        const next: FileEntry[] = [];
        for (const e of left) {
          const kind = kindOfType(e.type);
          if (!kind) throw new StasisError('E_UNSUPPORTED', `Cannot restore file ${e.id}: its type ${e.type} is not supported`);
          const r = kind.open(e, ctx);
          if (r.status === 'done') o.fds.set(e.id, r.fd);
          else next.push(e);
        }
        if (next.length === left.length) throw new StasisError('E_CORRUPT', `Files ${next.map((e) => e.id).join(', ')} wait on each other`);
        left = next;
      }
      return o;
    } catch (err) {
      o.close();
      throw err;
    } finally {
      for (const k of FILE_KINDS) k.finish?.(ctx);
      ctx.ghosts.unlinkAll();
    }
  }

  get(id: number): number {
    const fd = this.fds.get(id);
    if (fd === undefined) throw new StasisError('E_CORRUPT', `File ${id} was not opened`);
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
    this.fds.clear();
  }
}
