// The constants and the struct flock of the locks a restored task takes by injected
// flock/fcntl calls (restore/restore-locks.ts).
export const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
export const F_SETLK = 6, F_OFD_SETLK = 37;
const SEEK_SET = 0;

/** struct flock (x86_64): l_type, l_whence (short), l_start, l_len (off_t), l_pid. */
export function flockStruct(type: number, start: bigint, len: bigint): Buffer {
  const b = Buffer.alloc(32);
  b.writeInt16LE(type, 0);
  b.writeInt16LE(SEEK_SET, 2);
  b.writeBigInt64LE(start, 8);
  b.writeBigInt64LE(len, 16);
  return b;
}
