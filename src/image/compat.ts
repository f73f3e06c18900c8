// Normalisers applied to entries on decode, so that callers see images of older
// versions in the current shape. One per image kind that needs it.
import { isFieldSet } from '@bufbuild/protobuf';
import { PagemapEntrySchema, type PagemapEntry } from './gen/stasis/pagemap_pb.js';
import { PE } from './pagemap-flags.js';

/**
 * Pagemaps written before `flags` existed say `in_parent` or nothing (pages present);
 * CRIU reads them the same way (init_compat_pagemap_entry in criu/pagemap.c).
 */
export function normalisePagemapEntry(entry: PagemapEntry): void {
  if (entry.inParent) entry.flags |= PE.PARENT;
  else if (!isFieldSet(entry, PagemapEntrySchema.field.flags)) entry.flags = PE.PRESENT;
}
