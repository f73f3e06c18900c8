// Normalisers applied to entries on decode, so that callers see images of older
// versions in the current shape. One per image kind that needs it.
import { create, isFieldSet } from '@bufbuild/protobuf';
import { PagemapEntrySchema, type PagemapEntry } from './gen/stasis/pagemap_pb.js';
import { PE } from './pagemap-flags.js';
import type { FileEntry } from './gen/stasis/fdinfo_pb.js';
import type { TtyInfoEntry } from './gen/stasis/tty_pb.js';

/**
 * Pagemaps written before `flags` existed say `in_parent` or nothing (pages present);
 * CRIU reads them the same way (init_compat_pagemap_entry in criu/pagemap.c).
 */
export function normalisePagemapEntry(entry: PagemapEntry): void {
  if (entry.inParent) entry.flags |= PE.PARENT;
  else if (!isFieldSet(entry, PagemapEntrySchema.field.flags)) entry.flags = PE.PRESENT;
  // CRIU before 4.2 (and crit 3.17) know only the 32-bit count (field 2); CRIU 4.2 writes 0
  // there and the count in nr_pages (field 5).
  if (!isFieldSet(entry, PagemapEntrySchema.field.nrPages)) entry.nrPages = BigInt(entry.compatNrPages);
}

/** A pagemap entry as stasis writes it: the count in both fields, so that every reader, old or new, finds it. */
export function pagemapEntry(vaddr: bigint, nrPages: number, flags: number): PagemapEntry {
  return create(PagemapEntrySchema, { vaddr, compatNrPages: nrPages <= 0xffffffff ? nrPages : 0, nrPages: BigInt(nrPages), flags });
}

/** The page count of a decoded entry (normalised or not). */
export function pagemapCount(entry: PagemapEntry): number {
  return Number(isFieldSet(entry, PagemapEntrySchema.field.nrPages) ? entry.nrPages : entry.compatNrPages);
}

/**
 * CRIU keeps a path-bound Unix socket's name as the kernel reports it, with the trailing NUL
 * when the task bound with one (`log.sock\0`); stasis's names are paths without it. An
 * abstract name (first byte NUL) is bytes, kept whole.
 */
export function normaliseFileEntry(entry: FileEntry): void {
  const name = entry.usk?.name;
  if (!name?.length || name[0] === 0) return;
  let end = name.length;
  while (end > 0 && name[end - 1] === 0) end--;
  if (end < name.length) entry.usk!.name = name.subarray(0, end);
}

/** c_cc entries of a TermiosEntry: the kernel's NCCS (CRIU's TERMIOS_NCC). */
const TERMIOS_NCC = 19;

/**
 * c_cc as CRIU writes it: it memcpy()s glibc's `c_cc` bytes into the uint32 array, four to a
 * word, little-endian, and reads them back the same way; CRIU 4.2 needs n_c_cc >= 19.
 */
export function packTermiosCc(cc: number[]): number[] {
  const bytes = Buffer.alloc(TERMIOS_NCC * 4);
  cc.slice(0, TERMIOS_NCC).forEach((v, i) => (bytes[i] = v & 0xff));
  return Array.from({ length: TERMIOS_NCC }, (_, i) => bytes.readUInt32LE(i * 4));
}

/**
 * c_cc one character to an entry again. A word above 0xff is CRIU's packing (VINTR with
 * VQUIT, VERASE and VKILL above it); stasis's older images hold one character a word.
 */
function unpackTermiosCc(cc: number[]): number[] {
  if (!cc.some((w) => w > 0xff)) return cc;
  const bytes = Buffer.alloc(cc.length * 4);
  cc.forEach((w, i) => bytes.writeUInt32LE(w >>> 0, i * 4));
  return Array.from(bytes.subarray(0, TERMIOS_NCC));
}

export function normaliseTtyInfoEntry(entry: TtyInfoEntry): void {
  for (const t of [entry.termios, entry.termiosLocked]) if (t) t.cCc = unpackTermiosCc(t.cCc);
}
