// Ghost files at restore: each ghost of the image is recreated once, in the directory its
// file was in, from ghost-file-<hex id>.img; every regular file remapped to it is opened
// from there; once all files are open the ghosts are unlinked, so the tasks hold deleted
// files with the contents, size, mode and times they had. Where the original name is free
// the ghost is opened under it (the fd's link reads `/dir/name (deleted)` as before);
// where another file took the name (a replaced path) under a temporary one beside it.
import fs from 'node:fs';
import path from 'node:path';
import { readImage, imageExists } from '../image/index.js';
import { StasisError } from '../errors.js';

interface Made {
  /** The name the files are opened by. */
  path: string;
  dev: bigint;
  ino: bigint;
}

export class GhostRestorer {
  private remaps: Map<number, number> | null = null;
  private readonly made = new Map<number, Made>();

  constructor(readonly imagesDir: string) {}

  /** The ghost a regular file is remapped to, if any. */
  ghostOf(fileId: number): number | undefined {
    if (!this.remaps) {
      this.remaps = new Map();
      if (imageExists(this.imagesDir, 'remap-fpath', undefined)) {
        for (const r of readImage(this.imagesDir, 'remap-fpath', undefined)) {
          if (r.remapType !== undefined && r.remapType !== 1) {
            throw new StasisError('E_UNSUPPORTED', `remap-fpath.img remaps file ${r.origId} with type ${r.remapType}; only ghost files are supported`);
          }
          this.remaps.set(r.origId, r.remapId);
        }
      }
    }
    return this.remaps.get(fileId);
  }

  /** The path to open file `fileId` (named `orig` in the image) by: its ghost, created on first use. */
  pathFor(ghostId: number, fileId: number, orig: string): string {
    const got = this.made.get(ghostId);
    if (got) return got.path;
    const img = readImage(this.imagesDir, 'ghost-file', ghostId);
    const dir = path.dirname(orig);
    if (!fs.existsSync(dir)) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot recreate the deleted file ${orig} (file ${fileId}): its directory ${dir} is gone`);
    }
    const tmp = path.join(dir, `.${path.basename(orig)}.stasis-ghost-${ghostId.toString(16)}-${process.pid}`);
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    let made: Made;
    try {
      const h = img.head;
      if (h.chunks) {
        for (const c of img.chunks) writeAll(fd, c.payload, Number(c.entry.off));
      } else if (img.contents) {
        writeAll(fd, img.contents, 0);
      }
      fs.ftruncateSync(fd, Number(h.size ?? BigInt(img.contents?.length ?? 0)));
      fs.fchownSync(fd, h.uid, h.gid);
      fs.fchmodSync(fd, h.mode & 0o7777);
      const secs = (t: { tvSec: bigint; tvUsec: bigint } | undefined) => (t ? Number(t.tvSec) + Number(t.tvUsec) / 1e6 : Date.now() / 1000);
      fs.futimesSync(fd, secs(h.atim), secs(h.mtim));
      const st = fs.fstatSync(fd, { bigint: true });
      made = { path: tmp, dev: st.dev, ino: st.ino };
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw new StasisError('E_RESTORE_FAILED', `Cannot recreate the deleted file ${orig} (file ${fileId}): ${(err as Error).message}`, { cause: err });
    } finally {
      fs.closeSync(fd);
    }
    // link() never replaces: it fails where the name is taken (the path was replaced).
    try {
      fs.linkSync(tmp, orig);
      fs.rmSync(tmp);
      made.path = orig;
    } catch {
      /* keep the temporary name */
    }
    this.made.set(ghostId, made);
    return made.path;
  }

  /** Unlinks every ghost (their files are open by now); only names still leading to our inode. */
  unlinkAll(): void {
    for (const m of this.made.values()) {
      try {
        const st = fs.statSync(m.path, { bigint: true });
        if (st.dev === m.dev && st.ino === m.ino) fs.unlinkSync(m.path);
      } catch {
        /* gone already */
      }
    }
    this.made.clear();
  }
}

function writeAll(fd: number, data: Uint8Array, at: number): void {
  for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done, data.length - done, at + done);
}
