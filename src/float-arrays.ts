// Float64Array helpers for the numbers a restore keeps in typed arrays (page runs, reads, a
// lazy task's pieces): growing them, putting them in order. Here, below every layer, as
// errors.ts is: image (the pagemap decoder) and mem (the page lists) both grow such arrays,
// and image may not import mem.

/** A copy of `a` in an array twice as long (16 numbers at least), the rest zeros. */
export function doubled(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(Math.max(16, a.length * 2));
  b.set(a);
  return b;
}

/**
 * The places i * stride (i < n) of `key`, in the order of the numbers there (a stable sort):
 * an order for permuted() to put the arrays of a table in (stride 1), or one packed array.
 */
export function orderBy(key: Float64Array, n: number, stride = 1): number[] {
  return Array.from({ length: n }, (_, i) => i * stride).sort((x, y) => key[x]! - key[y]!);
}

/** `a`'s groups of `stride` numbers from the places of `order` (orderBy()'s), one after the other. */
export function permuted(a: Float64Array, order: readonly number[], stride = 1): Float64Array<ArrayBuffer> {
  const b = new Float64Array(order.length * stride);
  for (let i = 0, k = 0; i < order.length; i++) for (let j = order[i]!, end = j + stride; j < end; j++) b[k++] = a[j]!;
  return b;
}
