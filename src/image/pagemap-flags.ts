// Flags of a pagemap entry (PagemapEntry.flags). Changing these values changes the format.

export const PE = {
  /** The pages are in the parent image set (incremental dumps). */
  PARENT: 1 << 0,
  /** The pages are to be fetched lazily, at the first fault. */
  LAZY: 1 << 1,
  /** The pages are in this image set's pages-N.img. */
  PRESENT: 1 << 2,
} as const;
