// ImageWriter: an image written entry by entry, for images too large to build in memory
// (pagemaps of big address spaces, ghost file contents, pipe buffers).
import fs from 'node:fs';
import path from 'node:path';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { StasisError } from '../errors.js';
import { MAX_ENTRY_SIZE, encodeHeader, frameMessage } from './framing.js';
import { frameGhostChunk, framePayloadItem } from './codec.js';
import {
  IMAGE_KINDS, imageFileName, type ImageHead, type ImageItem, type ImageKindName, type NameArg, type PayloadItem,
} from './image-kinds.js';
import { tempName } from './image-file.js';
import type { GhostChunkEntry, GhostFileEntry } from './gen/stasis/ghost-file_pb.js';
import { createImageFile } from './image-modes.js';

type Msg = MessageShape<DescMessage>;

/** Arguments after the name: the head entry, for kinds that start with one (pagemap, ghost-file). */
export type HeadArgs<K extends ImageKindName> = ImageHead<K> extends undefined ? [] : [head: ImageHead<K>];

const FLUSH_AT = 64 * 1024;

/**
 * Writes one image under a temporary name; `close()` renames it into place, `abort()` removes it.
 * Entries are buffered and written in blocks of 64 KiB.
 */
export class ImageWriter<K extends ImageKindName> {
  readonly file: string;
  private readonly label: string;
  private fd: number | undefined;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private count = 0;

  private constructor(
    private readonly kind: K,
    file: string,
    private readonly rawContents: boolean,
  ) {
    this.file = file;
    this.label = path.basename(file);
    this.fd = createImageFile(tempName(file));
  }

  static open<K extends ImageKindName>(dir: string, kind: K, nameArg: NameArg<K>, ...head: HeadArgs<K>): ImageWriter<K> {
    const def = IMAGE_KINDS[kind];
    const file = path.join(dir, imageFileName(kind, nameArg));
    if (def.layout === 'raw') {
      throw new StasisError('E_BAD_ARGS', `Image ${path.basename(file)} is a raw ${kind} image: write it directly`);
    }
    const headMsg = head[0] as Msg | undefined;
    const rawContents = def.layout === 'ghost' && !(headMsg as GhostFileEntry | undefined)?.chunks;
    const w = new ImageWriter(kind, file, rawContents);
    try {
      w.push(encodeHeader(def.head, def.magic));
      if (def.layout === 'head' || def.layout === 'ghost') {
        if (headMsg === undefined) throw new StasisError('E_BAD_ARGS', `Image ${w.label} needs its head entry to be opened`);
        w.push(frameMessage(def.headSchema as DescMessage, headMsg, w.label, 'head entry'));
      }
    } catch (err) {
      w.abort();
      throw err;
    }
    return w;
  }

  /** Appends one entry (with its data, for pipe data and ghost file chunks). */
  append(item: ImageItem<K>): void {
    const def = IMAGE_KINDS[this.kind];
    const where = `entry ${this.count}`;
    switch (def.layout) {
      case 'entries':
      case 'head':
        this.push(frameMessage(def.schema as DescMessage, item as Msg, this.label, where));
        break;
      case 'payload':
        this.push(framePayloadItem(def as never, item as PayloadItem<Msg>, this.label, where, MAX_ENTRY_SIZE));
        break;
      case 'ghost':
        if (this.rawContents) {
          throw new StasisError('E_BAD_ARGS', `Image ${this.label} holds raw contents: use appendContents()`);
        }
        this.push(frameGhostChunk(item as PayloadItem<GhostChunkEntry>, this.label, where, MAX_ENTRY_SIZE));
        break;
    }
    this.count++;
  }

  /** Appends file contents to a ghost file image whose head entry does not set chunks. */
  appendContents(bytes: Uint8Array): void {
    if (!this.rawContents) throw new StasisError('E_BAD_ARGS', `Image ${this.label} takes entries, not raw contents`);
    this.push(bytes);
  }

  /** Flushes what is buffered and renames the image into place. */
  close(): void {
    const fd = this.openFd();
    try {
      this.flush();
    } catch (err) {
      this.abort();
      throw err;
    }
    fs.closeSync(fd);
    this.fd = undefined;
    fs.renameSync(tempName(this.file), this.file);
  }

  /** Drops the partly written image. Safe to call more than once. */
  abort(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    this.pending = [];
    fs.rmSync(tempName(this.file), { force: true });
  }

  private openFd(): number {
    if (this.fd === undefined) throw new StasisError('E_BAD_ARGS', `Image ${this.label} is already closed`);
    return this.fd;
  }

  private push(bytes: Uint8Array): void {
    this.openFd();
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= FLUSH_AT) this.flush();
  }

  private flush(): void {
    const fd = this.openFd();
    for (const chunk of this.pending) {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
    }
    this.pending = [];
    this.pendingBytes = 0;
  }
}
