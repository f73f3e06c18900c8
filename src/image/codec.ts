// encodeImage() and decodeImage(): whole images to and from bytes, with no file system.
// decodeImage(kind, encodeImage(kind, x)) gives x back, and with `compat: false`
// encodeImage(kind, decodeImage(kind, bytes)) gives the same bytes back.
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { StasisError } from '../errors.js';
import {
  MAX_ENTRY_SIZE, checkHeader, corrupt, encodeHeader, frameMessage, peekMagic, readMessage, readPayload,
  remaining, truncated, unknownMagic, type Cursor,
} from './framing.js';
import {
  IMAGE_KINDS, kindsForFileName, type FramedKindName, type ImageContent, type ImageKindName, type PayloadItem,
  type GhostFileImage, type HeadImage,
} from './image-kinds.js';
import type { GhostChunkEntry } from './gen/stasis/ghost-file_pb.js';
import { PagemapEntrySchema } from './gen/stasis/pagemap_pb.js';
import { decodePagemapEntry, decodePagemapRuns, type PagemapRuns } from './pagemap-decode.js';
import type { PagemapHead } from './gen/stasis/pagemap_pb.js';
import { normalisePagemapEntry, pagemapCount } from './compat.js';

export interface DecodeOptions {
  /** Names the image in error messages; defaults to the kind's file name pattern. */
  fileName?: string;
  /** Apply the kind's compat normaliser to each entry (default true). Recoding checks turn it off. */
  compat?: boolean;
  maxEntrySize?: number;
}

export interface EncodeOptions {
  fileName?: string;
  maxEntrySize?: number;
}

/** A decoded image whose kind was found from its magic. */
export type AnyImage = { [K in FramedKindName]: { kind: K; content: ImageContent<K> } }[FramedKindName];

type Msg = MessageShape<DescMessage>;

/** The registry entry of a kind, seen through the shape all layouts share. */
export interface LooseKind {
  layout: 'entries' | 'head' | 'payload' | 'ghost' | 'raw';
  pattern: string;
  magic?: number;
  head?: 'common' | 'service' | 'none';
  schema?: DescMessage;
  headSchema?: DescMessage;
  compat?: (entry: Msg) => void;
  payloadSize?: (entry: Msg, following?: Uint8Array) => number;
}

function framed(kind: ImageKindName, label: string): LooseKind & { magic: number; head: 'common' | 'service' | 'none' } {
  const def = IMAGE_KINDS[kind] as LooseKind;
  if (def.layout === 'raw' || def.magic === undefined || def.head === undefined) {
    throw new StasisError('E_BAD_ARGS', `Image ${label} is a raw ${kind} image: it has no entries to encode or decode`);
  }
  return def as LooseKind & { magic: number; head: 'common' | 'service' | 'none' };
}

function need<T>(value: T | undefined): T {
  if (value === undefined) throw new StasisError('E_INTERNAL', 'An entry of the image kind registry is incomplete');
  return value;
}

export function encodeImage<K extends ImageKindName>(kind: K, content: ImageContent<K>, opts: EncodeOptions = {}): Uint8Array {
  const label = opts.fileName ?? IMAGE_KINDS[kind].pattern;
  const def = framed(kind, label);
  const max = opts.maxEntrySize ?? MAX_ENTRY_SIZE;
  const parts: Uint8Array[] = [encodeHeader(def.head, def.magic)];
  const schema = need(def.schema);
  switch (def.layout) {
    case 'entries':
      (content as Msg[]).forEach((m, i) => parts.push(frameMessage(schema, m, label, `entry ${i}`, max)));
      break;
    case 'head': {
      const img = content as HeadImage<Msg, Msg>;
      parts.push(frameMessage(need(def.headSchema), img.head, label, 'head entry', max));
      img.entries.forEach((m, i) => parts.push(frameMessage(schema, m, label, `entry ${i}`, max)));
      break;
    }
    case 'payload':
      (content as PayloadItem<Msg>[]).forEach((item, i) => {
        parts.push(framePayloadItem(def, item, label, `entry ${i}`, max));
      });
      break;
    case 'ghost':
      parts.push(...encodeGhost(def, content as GhostFileImage, label, max));
      break;
  }
  return concat(parts);
}

/** Frames an entry and the raw data after it, checking that the entry announces the data's length. */
export function framePayloadItem(def: LooseKind, item: PayloadItem<Msg>, label: string, where: string, max: number): Uint8Array {
  const schema = need(def.schema);
  const size = need(def.payloadSize)(item.entry, item.payload);
  if (size !== item.payload.length) {
    throw new StasisError('E_CORRUPT',
      `Cannot write ${label}: ${where} (${schema.name}) announces ${size} bytes of data but carries ${item.payload.length}`);
  }
  return concat([frameMessage(schema, item.entry, label, where, max), item.payload]);
}

/** Frames one ghost file chunk and its data. */
export function frameGhostChunk(item: PayloadItem<GhostChunkEntry>, label: string, where: string, max: number): Uint8Array {
  const schema = IMAGE_KINDS['ghost-file'].schema;
  if (item.entry.len !== BigInt(item.payload.length)) {
    throw new StasisError('E_CORRUPT',
      `Cannot write ${label}: ${where} (${schema.name}) announces ${item.entry.len} bytes but carries ${item.payload.length}`);
  }
  return concat([frameMessage(schema, item.entry, label, where, max), item.payload]);
}

function encodeGhost(def: LooseKind, img: GhostFileImage, label: string, max: number): Uint8Array[] {
  const parts = [frameMessage(need(def.headSchema), img.head, label, 'head entry', max)];
  if (img.head.chunks) {
    if (img.contents !== undefined) {
      throw new StasisError('E_CORRUPT', `Cannot write ${label}: a chunked ghost file carries its data in chunks, not contents`);
    }
    img.chunks.forEach((c, i) => parts.push(frameGhostChunk(c, label, `chunk ${i}`, max)));
  } else {
    if (img.chunks.length > 0) {
      throw new StasisError('E_CORRUPT', `Cannot write ${label}: chunks given but the head entry does not set chunks`);
    }
    parts.push(img.contents ?? new Uint8Array(0));
  }
  return parts;
}

export function decodeImage<K extends ImageKindName>(kind: K, bytes: Uint8Array, opts: DecodeOptions = {}): ImageContent<K> {
  const label = opts.fileName ?? IMAGE_KINDS[kind].pattern;
  const def = framed(kind, label);
  const c: Cursor = {
    bytes, label, off: checkHeader(bytes, label, def.head, def.magic), maxEntrySize: opts.maxEntrySize ?? MAX_ENTRY_SIZE,
  };
  const compat = opts.compat === false ? undefined : def.compat;
  const schema = need(def.schema);
  switch (def.layout) {
    case 'entries':
      return readAll(c, schema, compat) as ImageContent<K>;
    case 'head': {
      if (remaining(c) === 0) throw truncated(label, `head entry at offset ${c.off}`, 4, 0);
      const head = readMessage(c, need(def.headSchema));
      return { head, entries: readAll(c, schema, compat) } as ImageContent<K>;
    }
    case 'payload': {
      const items: PayloadItem<Msg>[] = [];
      while (remaining(c) > 0) {
        const at = c.off;
        const entry = readMessage(c, schema);
        items.push({ entry, payload: readPayload(c, need(def.payloadSize)(entry, c.bytes.subarray(c.off)), at) });
      }
      return items as ImageContent<K>;
    }
    case 'ghost':
      return decodeGhost(c, def) as ImageContent<K>;
    default:
      throw corrupt(label, `kind ${kind} has no decoder`);
  }
}

/**
 * A pagemap image (of a task or a shared memory object) as its head and its entries in
 * numbers (decodePagemapRuns): what a restore reads of it. The same checks as decodeImage's,
 * the same normalised values.
 */
export function decodePagemapImage(kind: 'pagemap' | 'shmem-pagemap', bytes: Uint8Array, opts: DecodeOptions = {}): { head: PagemapHead; runs: PagemapRuns } {
  const label = opts.fileName ?? IMAGE_KINDS[kind].pattern;
  const def = framed(kind, label);
  const c: Cursor = {
    bytes, label, off: checkHeader(bytes, label, def.head, def.magic), maxEntrySize: opts.maxEntrySize ?? MAX_ENTRY_SIZE,
  };
  if (remaining(c) === 0) throw truncated(label, `head entry at offset ${c.off}`, 4, 0);
  const head = readMessage(c, need(def.headSchema)) as PagemapHead;
  const runs = decodePagemapRuns(bytes, c.off, c.maxEntrySize, (at) => {
    c.off = at;
    const e = readMessage(c, PagemapEntrySchema);
    normalisePagemapEntry(e);
    return { next: c.off, vaddr: e.vaddr, nrPages: pagemapCount(e), flags: e.flags };
  });
  return { head, runs };
}

function readAll(c: Cursor, schema: DescMessage, compat: ((e: Msg) => void) | undefined): Msg[] {
  const out: Msg[] = [];
  const pagemap = schema === PagemapEntrySchema;
  while (remaining(c) > 0) {
    const msg = (pagemap ? fastPagemapEntry(c) : undefined) ?? readMessage(c, schema);
    compat?.(msg);
    out.push(msg);
  }
  return out;
}

/** A pagemap entry at the cursor by decodePagemapEntry(), or undefined (the cursor unmoved) for readMessage() to decode or refuse. */
function fastPagemapEntry(c: Cursor): Msg | undefined {
  if (remaining(c) < 4) return undefined;
  const size = c.bytes[c.off]! | (c.bytes[c.off + 1]! << 8) | (c.bytes[c.off + 2]! << 16) | (c.bytes[c.off + 3]! << 24);
  if (size <= 0 || size > remaining(c) - 4 || size > c.maxEntrySize) return undefined;
  const msg = decodePagemapEntry(c.bytes, c.off + 4, c.off + 4 + size);
  if (msg) c.off += 4 + size;
  return msg;
}

function decodeGhost(c: Cursor, def: LooseKind): GhostFileImage {
  if (remaining(c) === 0) throw truncated(c.label, `head entry at offset ${c.off}`, 4, 0);
  const head = readMessage(c, need(def.headSchema)) as GhostFileImage['head'];
  if (!head.chunks) return { head, chunks: [], contents: readPayload(c, remaining(c), c.off) };
  const chunks: PayloadItem<GhostChunkEntry>[] = [];
  while (remaining(c) > 0) {
    const at = c.off;
    const entry = readMessage(c, need(def.schema)) as GhostChunkEntry;
    chunks.push({ entry, payload: readPayload(c, entry.len, at) });
  }
  return { head, chunks };
}

/**
 * Decodes an image of any kind, found from its magic words; where kinds share a magic
 * (pagemap and pagemap-shmem), the file name decides.
 */
export function decodeAnyImage(bytes: Uint8Array, opts: DecodeOptions = {}): AnyImage {
  const label = opts.fileName ?? 'image';
  const seen = peekMagic(bytes, label);
  const candidates = (Object.keys(IMAGE_KINDS) as ImageKindName[]).filter((k) => {
    const def = IMAGE_KINDS[k] as LooseKind;
    return def.layout !== 'raw' && def.magic === seen.magic && def.head === seen.head;
  }) as FramedKindName[];
  const byName = opts.fileName === undefined ? [] : kindsForFileName(baseName(opts.fileName));
  const kind = candidates.find((k) => byName.includes(k)) ?? candidates[0];
  if (kind === undefined) {
    if (byName.some((k) => IMAGE_KINDS[k].layout === 'raw')) {
      throw new StasisError('E_BAD_MAGIC', `Image ${label} is a raw image with no magic and no entries to show`);
    }
    throw unknownMagic(label, seen);
  }
  return { kind, content: decodeImage(kind, bytes, opts) } as AnyImage;
}

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
