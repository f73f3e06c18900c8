// /proc/PID/auxv: the auxiliary vector the kernel gave the program at exec, binary pairs of
// native-endian u64 (key, value) up to and including the AT_NULL pair. CRIU stores it
// flat, in this order, as MmEntry.mm_saved_auxv, and restore hands it back through
// prctl(PR_SET_MM_AUXV).
import { ProcFormatError } from './proc-format-error.js';

export const AT_NULL = 0n;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The words of the vector: key, value, key, value..., ending with AT_NULL, 0; [] for an empty file (a kernel thread). */
export function parseAuxv(buf: Uint8Array): bigint[] {
  if (buf.byteLength % 16 !== 0) throw new ProcFormatError('auxv', `${buf.byteLength} bytes is not a whole number of 16-byte pairs`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const words: bigint[] = [];
  for (let off = 0; off < buf.byteLength; off += 16) {
    const key = view.getBigUint64(off, LITTLE_ENDIAN);
    words.push(key, view.getBigUint64(off + 8, LITTLE_ENDIAN));
    if (key === AT_NULL) return words;
  }
  if (words.length > 0) throw new ProcFormatError('auxv', 'the vector has no AT_NULL pair at its end');
  return words;
}
