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
import { nsFile } from './ns-file.js';
import { fanotify } from './fanotify.js';
import { ioUring } from './io-uring.js';
import { netlinkSocket } from './netlink-socket.js';
import { pidfd } from './pidfd.js';
import { packetSocket } from './packet-socket.js';
import { tun } from './tun.js';

// memfds before regular files: a memfd's link looks like a deleted file's; tun files too, /dev/net/tun is a character device. Unix sockets before
// inet ones: sock_diag tells a Unix socket at once, inet ones are looked up in /proc/PID/net.
export const FILE_KINDS: readonly FileKind[] = [
  tty, memfd, tun, reg, pipe, fifo, eventfd, eventpoll, signalfd, timerfd, inotify, unixSocket, inetSocket, netlinkSocket, packetSocket, nsFile, fanotify, pidfd, ioUring,
];

export function kindOfType(type: FdTypes): FileKind | undefined {
  return FILE_KINDS.find((k) => k.type === type);
}

export * from './kind.js';
export { FileIds } from './file-ids.js';
export { GhostDumper, DEFAULT_GHOST_LIMIT } from './ghost.js';
export { GhostRestorer } from './ghost-restore.js';
export { DeadPids } from './dead-pids.js';
export { threadPidfdTrouble, type PidfdHolder } from './pidfd.js';
export { LockCollector } from './file-locks.js';
export { isTtyRdev } from './tty.js';
export { TtySink, type TtyTask } from './tty-state.js';
export { TtyRestoreState, restoreCtty } from './tty-restore.js';
export { addEpollTargets, dumpEpoll } from './eventpoll.js';
export { newPipeDataSink, writePipeData, readPipeData, checkPipePeers, readExternalPipes } from './pipe-data.js';
export { newUnixSkSink, checkUnixPeers, closeInFlight, externEntries, iconOf, refuseUnorderedPending, writeSkQueues, readUnixSkState } from './unix-socket-data.js';
export { criuFileOrder } from './unix-socket.js';
export { SAME_OWNERS, translateOwners, ttyOwners, unixOwners, ghostOwners, type Owners } from './owners.js';
export { InheritedFds, dupInherited } from './inherit.js';
