// Float64Array helpers for the numbers a restore keeps in typed arrays (page runs, reads, a
// lazy task's pieces): here, below every layer, as errors.ts is, since image (the pagemap
// decoder) and mem (the page lists) both grow such arrays and image may not import mem.

/** A copy of `a` in an array twice as long (16 numbers at least), the rest zeros. */
export function doubled(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(Math.max(16, a.length * 2));
  b.set(a);
  return b;
}
