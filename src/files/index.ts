// The fd kinds stasis knows, in the order they are tried: terminals before regular files,
// because a terminal is also a character device with a path; pipes and FIFOs are told apart
// by their link (`pipe:[ino]` or a path), and regular files take no FIFO.
import type { FdTypes } from '../image/gen/stasis/fdinfo_pb.js';
import type { FileKind } from './kind.js';
import { tty } from './tty.js';
import { reg } from './reg.js';
import { pipe } from './pipe.js';
import { fifo } from './fifo.js';
import { eventfd } from './eventfd.js';
import { eventpoll } from './eventpoll.js';
import { signalfd } from './signalfd.js';
import { timerfd } from './timerfd.js';
import { memfd } from './memfd.js';
import { unixSocket } from './unix-socket.js';
import { inotify } from './inotify.js';
import { inetSocket } from './inet-socket.js';

// memfds before regular files: a memfd's link looks like a deleted file's. Unix sockets before
// inet ones: sock_diag tells a Unix socket at once, inet ones are looked up in /proc/PID/net.
export const FILE_KINDS: readonly FileKind[] = [
  tty, memfd, reg, pipe, fifo, eventfd, eventpoll, signalfd, timerfd, inotify, unixSocket, inetSocket,
];

export function kindOfType(type: FdTypes): FileKind | undefined {
  return FILE_KINDS.find((k) => k.type === type);
}

export * from './kind.js';
export { FileIds } from './file-ids.js';
export { GhostDumper, DEFAULT_GHOST_LIMIT } from './ghost.js';
export { GhostRestorer } from './ghost-restore.js';
export { LockCollector } from './file-locks.js';
export { ttyInfo, isTtyRdev } from './tty.js';
export { addEpollTargets } from './eventpoll.js';
export { newPipeDataSink, writePipeData, readPipeData } from './pipe-data.js';
export { newUnixSkSink, checkUnixPeers, writeSkQueues, readUnixSkState } from './unix-socket-data.js';
