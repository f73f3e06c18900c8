// Ghost files at dump: a regular file open in a task whose path no longer leads to it (it
// was unlinked, or another file was put in its place) cannot be reopened by path, so its
// contents go into the image, as CRIU's ghost files do: ghost-file-<hex id>.img holds a
// GhostFileEntry and the data as chunks (holes skipped), and remap-fpath.img maps the
// regular file's id to the ghost's. One ghost per inode: every open of it shares the ghost.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { GhostFileEntrySchema, GhostChunkEntrySchema } from '../image/gen/stasis/ghost-file_pb.js';
import { RemapFilePathEntrySchema, RemapType, type RemapFilePathEntry } from '../image/gen/stasis/remap-file-path_pb.js';
import type { GhostFileImage } from '../image/index.js';
import { lseek, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe } from './kind.js';

/** CRIU's default --ghost-limit: 1 MiB. */
export const DEFAULT_GHOST_LIMIT = 1 << 20;
const SEEK_DATA = 3, SEEK_HOLE = 4;
const ENXIO = 6;
const CHUNK = 1 << 20;

export class GhostDumper {
  private readonly byInode = new Map<string, number>();
  private nextId = 1;
  readonly remaps: RemapFilePathEntry[] = [];
  readonly ghosts: { id: number; image: GhostFileImage }[] = [];

  constructor(readonly limit: number = DEFAULT_GHOST_LIMIT) {}

  /** Keeps the contents of the file behind fd `p` (once per inode) and remaps file `fileId` to it. */
  add(p: FdProbe, fileId: number, path: string): void {
    const key = `${p.stat.dev}:${p.stat.ino}`;
    let id = this.byInode.get(key);
    if (id === undefined) {
      // What the file occupies on disk, as CRIU measures it (st_blocks): holes cost nothing.
      const used = p.stat.blocks * 512n;
      if (used > BigInt(this.limit)) {
        throw new StasisError('E_GHOST_LIMIT',
          `Cannot dump fd ${p.fd} of pid ${p.pid}: ${path} was deleted or replaced and its contents (${used} bytes) ` +
          `exceed the ghost file limit of ${this.limit} bytes; raise it with --ghost-limit (ghostLimit)`);
      }
      id = this.nextId++;
      this.ghosts.push({ id, image: this.read(p) });
      this.byInode.set(key, id);
    }
    this.remaps.push(create(RemapFilePathEntrySchema, { origId: fileId, remapId: id, remapType: RemapType.GHOST }));
  }

  private read(p: FdProbe): GhostFileImage {
    const st = p.stat;
    const tv = (ns: bigint) => ({ tvSec: ns / 1_000_000_000n, tvUsec: (ns % 1_000_000_000n) / 1000n });
    const head = create(GhostFileEntrySchema, {
      uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode), dev: kernelDev(st.dev), ino: st.ino,
      atim: tv(st.atimeNs), mtim: tv(st.mtimeNs), chunks: true, size: st.size,
    });
    // Through the task's own fd (the path is gone): a fresh open file of the same inode.
    const fd = fs.openSync(`/proc/${p.pid}/fd/${p.fd}`, 'r');
    const chunks: GhostFileImage['chunks'] = [];
    try {
      let off = 0n;
      for (;;) {
        const start = seekOrEnd(fd, off, SEEK_DATA);
        if (start === null || start >= st.size) break;
        const end = seekOrEnd(fd, start, SEEK_HOLE) ?? st.size;
        for (let at = start; at < end; at += BigInt(CHUNK)) {
          const len = Number(end - at < BigInt(CHUNK) ? end - at : BigInt(CHUNK));
          const buf = Buffer.alloc(len);
          let got = 0;
          while (got < len) {
            const n = fs.readSync(fd, buf, got, len - got, Number(at) + got);
            if (n === 0) break;
            got += n;
          }
          chunks.push({ entry: create(GhostChunkEntrySchema, { len: BigInt(got), off: at }), payload: buf.subarray(0, got) });
        }
        off = end;
      }
    } finally {
      fs.closeSync(fd);
    }
    return { head, chunks };
  }
}

/** CRIU keeps devices in the kernel's encoding (major << 20 | minor), as crit prints them. */
function kernelDev(dev: bigint): number {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return Number(BigInt.asUintN(32, (major << 20n) | minor));
}

/** lseek(SEEK_DATA / SEEK_HOLE); null past the last data (ENXIO). */
function seekOrEnd(fd: number, off: bigint, whence: number): bigint | null {
  try {
    return lseek(fd, off, whence);
  } catch (err) {
    if (err instanceof SyscallError && err.errno === ENXIO) return null;
    throw err;
  }
}
