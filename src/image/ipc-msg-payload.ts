// The bytes after an IpcMsgEntry in ipcns-msg-<id>.img: qnum times a 32-bit size, that many
// bytes of IpcMsg, then the message's text rounded up to 8 bytes (CRIU's layout). Changing
// this changes the format.
import { fromBinary } from '@bufbuild/protobuf';
import { IpcMsgSchema, type IpcMsg, type IpcMsgEntry } from './gen/stasis/ipc-sysv_pb.js';
import { StasisError } from '../errors.js';

/** The IpcMsg whose size word is at `at`, and where its text starts. */
export function ipcMsgAt(b: Uint8Array, at: number): { msg: IpcMsg; next: number } {
  if (at + 4 > b.length) throw new StasisError('E_TRUNCATED', `A message of a SysV queue is cut short at byte ${at}`);
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
  if (at + 4 + n > b.length) throw new StasisError('E_TRUNCATED', `A message of a SysV queue is cut short at byte ${at}`);
  try {
    return { msg: fromBinary(IpcMsgSchema, b.subarray(at + 4, at + 4 + n)), next: at + 4 + n };
  } catch (e) {
    throw new StasisError('E_CORRUPT', `A message of a SysV queue at byte ${at} does not decode: ${(e as Error).message}`);
  }
}

/** How many bytes the queue's messages take in `following` (the bytes after the entry). */
export function ipcMsgPayloadSize(entry: IpcMsgEntry, following: Uint8Array | undefined): number {
  if (!following) throw new StasisError('E_BAD_ARGS', 'The size of a SysV queue\'s messages needs its bytes');
  let at = 0;
  for (let i = 0; i < entry.qnum; i++) {
    const { msg, next } = ipcMsgAt(following, at);
    at = next + Math.ceil(msg.msize / 8) * 8;
  }
  return at;
}
