// The framing of an image file: head magic word, image magic, then entries, each a
// u32 little-endian length followed by a protobuf message (CRIU's IMAGE ::= MAGIC {SIZE PAYLOAD [EXTRA]}).
// Every length is checked against what remains before anything is sliced or decoded.
import { fromBinary, toBinary, isFieldSet, type DescField, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence } from '@bufbuild/protobuf/wkt';
import { StasisError } from '../errors.js';
import { MAGIC, headMagicValue, hex32, magicName, type HeadMagic } from './magic.js';

/** Largest entry we encode or decode; CRIU's largest (an mm entry with every VMA) stays far below. */
export const MAX_ENTRY_SIZE = 16 * 1024 * 1024;

const SIZE_WORD = 4;

/** A position in an image being decoded; `label` names the file in error messages. */
export interface Cursor {
  readonly bytes: Uint8Array;
  readonly label: string;
  readonly maxEntrySize: number;
  off: number;
}

export function remaining(c: Cursor): number {
  return c.bytes.length - c.off;
}

function u32(bytes: Uint8Array, off: number): number {
  return ((bytes[off] as number) | ((bytes[off + 1] as number) << 8) | ((bytes[off + 2] as number) << 16) |
    ((bytes[off + 3] as number) << 24)) >>> 0;
}

function putU32(bytes: Uint8Array, off: number, value: number): void {
  bytes[off] = value & 0xff;
  bytes[off + 1] = (value >>> 8) & 0xff;
  bytes[off + 2] = (value >>> 16) & 0xff;
  bytes[off + 3] = (value >>> 24) & 0xff;
}

/** `what` names the missing piece and where it starts ("entry at offset 8"). */
export function truncated(label: string, what: string, need: number | bigint, left: number): StasisError {
  return new StasisError('E_TRUNCATED', `Image ${label} is truncated: ${what} needs ${need} bytes, ${left} remain`);
}

export function corrupt(label: string, detail: string, cause?: unknown): StasisError {
  return new StasisError('E_CORRUPT', `Image ${label} is corrupt: ${detail}`, cause === undefined ? undefined : { cause });
}

/** The words an image of this kind starts with. */
export function encodeHeader(head: HeadMagic, magic: number): Uint8Array {
  const first = headMagicValue(head);
  const out = new Uint8Array(first === undefined ? SIZE_WORD : 2 * SIZE_WORD);
  if (first === undefined) putU32(out, 0, magic);
  else {
    putU32(out, 0, first);
    putU32(out, SIZE_WORD, magic);
  }
  return out;
}

/** The magic words at the start of an image, as crit reads them: an optional head word, then the magic. */
export interface SeenMagic {
  head: HeadMagic;
  magic: number;
  /** Offset of the first entry. */
  end: number;
}

export function peekMagic(bytes: Uint8Array, label: string): SeenMagic {
  if (bytes.length < SIZE_WORD) throw truncated(label, 'magic at offset 0', SIZE_WORD, bytes.length);
  const first = u32(bytes, 0);
  const head: HeadMagic | undefined =
    first === headMagicValue('common') ? 'common' : first === headMagicValue('service') ? 'service' : undefined;
  if (head === undefined) return { head: 'none', magic: first, end: SIZE_WORD };
  if (bytes.length < 2 * SIZE_WORD) throw truncated(label, `magic at offset ${SIZE_WORD}`, SIZE_WORD, bytes.length - SIZE_WORD);
  return { head, magic: u32(bytes, SIZE_WORD), end: 2 * SIZE_WORD };
}

function describeMagic(head: HeadMagic, magic: number): string {
  const name = magicName(magic);
  const prefix = head === 'none' ? 'no head word' : `${head} head word`;
  return `${prefix} and magic ${hex32(magic)}${name === undefined ? '' : ` (${name})`}`;
}

/** Checks the header of an image of a known kind; returns the offset of its first entry. */
export function checkHeader(bytes: Uint8Array, label: string, head: HeadMagic, magic: number): number {
  const seen = peekMagic(bytes, label);
  if (seen.head !== head || seen.magic !== magic) {
    throw new StasisError('E_BAD_MAGIC',
      `Image ${label} has ${describeMagic(seen.head, seen.magic)}, expected ${describeMagic(head, magic)}`);
  }
  return seen.end;
}

/** A name for the magic of an unrecognised image, with the hint crit gives for raw images. */
export function unknownMagic(label: string, seen: SeenMagic): StasisError {
  const raw = seen.head === 'none' && seen.magic !== MAGIC.INVENTORY;
  return new StasisError('E_BAD_MAGIC', `Image ${label} has ${describeMagic(seen.head, seen.magic)}, which no image kind has` +
    (raw ? ': it may be a raw image such as pages-N.img' : ''));
}

const REQUIRED = FeatureSet_FieldPresence.LEGACY_REQUIRED;

/** A field missingRequired() looks at: required itself, or holding messages (`deep`) that have required fields. */
interface RequiredCheck {
  field: DescField;
  required: boolean;
  deep: boolean;
}

/** Per message type, the fields missingRequired() looks at, in field order; null where none (CRIU's messages are mostly proto2). */
const requiredChecks = new WeakMap<DescMessage, RequiredCheck[] | null>();

function requiredChecksOf(desc: DescMessage, busy: Set<DescMessage>): RequiredCheck[] | null {
  const known = requiredChecks.get(desc);
  if (known !== undefined) return known;
  busy.add(desc);
  const out: RequiredCheck[] = [];
  for (const field of desc.fields) {
    const inner = field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message') ? field.message : undefined;
    // (A message that holds itself, through others or not, is looked into.)
    const deep = inner !== undefined && (busy.has(inner) || requiredChecksOf(inner, busy) !== null);
    const required = field.presence === REQUIRED;
    if (required || deep) out.push({ field, required, deep });
  }
  busy.delete(desc);
  const checks = out.length ? out : null;
  requiredChecks.set(desc, checks);
  return checks;
}

/**
 * The dotted path of the first required field left unset, as CRIU's protobuf-c would reject it.
 * Only the fields that are required, or lead to messages with required fields, are looked at
 * (every field of every entry was, about 3 ms of a small restore in a cold process).
 */
export function missingRequired(desc: DescMessage, msg: MessageShape<DescMessage>): string | undefined {
  const checks = requiredChecks.get(desc) ?? requiredChecksOf(desc, new Set());
  if (!checks) return undefined;
  for (const { field, required, deep } of checks) {
    const set = isFieldSet(msg, field);
    if (required && !set) return field.name;
    if (!set || !deep) continue;
    const value = (msg as unknown as Record<string, unknown>)[field.localName];
    if (field.fieldKind === 'message') {
      const inner = missingRequired(field.message, value as MessageShape<DescMessage>);
      if (inner !== undefined) return `${field.name}.${inner}`;
    } else if (field.fieldKind === 'list' && field.listKind === 'message') {
      const items = value as MessageShape<DescMessage>[];
      for (let i = 0; i < items.length; i++) {
        const inner = missingRequired(field.message, items[i] as MessageShape<DescMessage>);
        if (inner !== undefined) return `${field.name}[${i}].${inner}`;
      }
    }
  }
  return undefined;
}

/** Encodes one entry with its length word. `where` names it in errors ("entry 3"). */
export function frameMessage<D extends DescMessage>(
  schema: D, msg: MessageShape<D>, label: string, where: string, maxEntrySize = MAX_ENTRY_SIZE,
): Uint8Array {
  const missing = missingRequired(schema, msg);
  if (missing !== undefined) {
    throw new StasisError('E_CORRUPT', `Cannot write ${label}: ${where} (${schema.name}) lacks required field ${missing}`);
  }
  let body: Uint8Array;
  try {
    body = toBinary(schema, msg);
  } catch (err) {
    throw new StasisError('E_CORRUPT', `Cannot write ${label}: ${where} (${schema.name}) does not encode: ${errText(err)}`,
      { cause: err });
  }
  if (body.length > maxEntrySize) {
    throw new StasisError('E_CORRUPT',
      `Cannot write ${label}: ${where} (${schema.name}) is ${body.length} bytes, over the ${maxEntrySize}-byte limit`);
  }
  const out = new Uint8Array(SIZE_WORD + body.length);
  putU32(out, 0, body.length);
  out.set(body, SIZE_WORD);
  return out;
}

/** Reads one entry at the cursor and moves past it. */
export function readMessage<D extends DescMessage>(c: Cursor, schema: D): MessageShape<D> {
  const at = c.off;
  if (remaining(c) < SIZE_WORD) throw truncated(c.label, `entry size at offset ${at}`, SIZE_WORD, remaining(c));
  const size = u32(c.bytes, at);
  const left = remaining(c) - SIZE_WORD;
  if (size > c.maxEntrySize) {
    throw corrupt(c.label, `entry at offset ${at} claims ${size} bytes, over the ${c.maxEntrySize}-byte limit`);
  }
  if (size > left) throw truncated(c.label, `entry at offset ${at}`, size, left);
  const body = c.bytes.subarray(at + SIZE_WORD, at + SIZE_WORD + size);
  let msg: MessageShape<D>;
  try {
    msg = fromBinary(schema, body);
  } catch (err) {
    throw corrupt(c.label, `entry at offset ${at} is not a valid ${schema.name}: ${errText(err)}`, err);
  }
  const missing = missingRequired(schema, msg);
  if (missing !== undefined) {
    throw corrupt(c.label, `entry at offset ${at} (${schema.name}) lacks required field ${missing}`);
  }
  c.off = at + SIZE_WORD + size;
  return msg;
}

/** Takes the raw bytes that follow the entry at `entryAt`; a view into the image, not a copy. */
export function readPayload(c: Cursor, size: number | bigint, entryAt: number): Uint8Array {
  const left = remaining(c);
  if (BigInt(size) > BigInt(left)) throw truncated(c.label, `data at offset ${c.off} (after the entry at offset ${entryAt})`, size, left);
  const n = Number(size);
  // A plain Uint8Array even when the image was read into a Buffer.
  const out = new Uint8Array(c.bytes.buffer, c.bytes.byteOffset + c.off, n);
  c.off += n;
  return out;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
