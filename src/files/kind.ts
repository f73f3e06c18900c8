// The contract every fd kind fulfils (one file per kind, registered in index.ts).
import type fs from 'node:fs';
import type { FileEntry, FdTypes } from '../image/gen/stasis/fdinfo_pb.js';
import type { Fdinfo } from '../proc/fdinfo.js';
import type { MountInfo } from '../proc/mountinfo.js';
import type { FileIds } from './file-ids.js';
import type { PipeDataSink, PipeRestoreState } from './pipe-data.js';
import type { GhostDumper } from './ghost.js';
import type { GhostRestorer } from './ghost-restore.js';
import type { LockCollector } from './file-locks.js';
import type { UnixRestoreState, UnixSkSink } from './unix-socket-data.js';
import type { TtySink } from './tty-state.js';
import type { TtyRestoreState } from './tty-restore.js';
import type { Log } from '../log.js';
import type { TcpDump, TcpRestore } from '../net/tcp-state.js';
import type { DeadPids } from './dead-pids.js';
import type { InheritedFds } from './inherit.js';

/** What /proc says about one fd of a frozen task. */
export interface FdProbe {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N: a path, `pipe:[ino]`, `anon_inode:[eventfd]`, ... */
  link: string;
  /** stat of the file behind the fd (through /proc/PID/fd/N). */
  stat: fs.BigIntStats;
  info: Fdinfo;
}

/** The mounts of a tree's own mount namespace and of those below it: each as its namespace shows it, and where stasis reaches that namespace's paths (`proc`: a task's /proc/PID/root). */
export interface TreeMounts {
  ids: ReadonlySet<number>;
  list: readonly (MountInfo & { proc: string })[];
}

export interface DumpFileCtx {
  pid: number;
  /** The run's log: each fd is logged at debug level. */
  log?: Log;
  imagesDir: string;
  shellJob: boolean;
  ids: FileIds;
  /** Contents of pipes and FIFOs, once per pipe; one for the whole dump, shared by its tasks. */
  pipeData: PipeDataSink;
  /** Where the contents of deleted or replaced files go; without it such files fail the dump. */
  ghosts?: GhostDumper;
  /** Where the locks held through the fds go; without it locks are not dumped. */
  locks?: LockCollector;
  /** The tree's shared memory objects (mem/shmem-dump.ts): a memfd's fds and mappings share one. */
  memfds?: { addMemfdFd(pid: number, fd: number, ino: bigint, anon?: boolean): number };
  /** Unix sockets: sock_diag's view, the sockets dumped (their peers are checked once every task is done), their queues. */
  unix: UnixSkSink;
  /** The terminals of the dump: their infos are filled once every task is seen. */
  ttys?: TtySink;
  /** The id of a namespace by its link (`net:[4026531833]`), numbered as the tasks' kernel object ids. */
  nsIdOf?: (link: string) => number;
  /** TCP: the options, the network lock, the connections in repair mode and their streams. */
  tcp: TcpDump;
  /** The pid in the images (the tree's pid namespace) of the task or thread of the tree `hostPid` (stasis's view) is. */
  treePid?: (hostPid: number) => number | undefined;
  /** A tree with a mount namespace of its own: the mounts (mnt_id) of that namespace. */
  mnt?: TreeMounts | undefined;
  /** Dumps a file stasis holds at `fd` (one in flight, taken from a socket's queue) as a file object; returns its id. */
  dumpInFlight?: (fd: number) => number;
}

export interface RestoreFileCtx {
  /** The run's log: each file object opened is logged at debug level. */
  log?: Log;
  /** Where the image's paths are opened from: the restored root's /proc/PID/root in a mount namespace of the tree's own. */
  root?: string;
  /** Where the paths of files on mount `mntId` are opened from, where it is of a nested mount namespace (restore/nested-mounts.ts). */
  rootOf?: (mntId: number) => string | undefined;
  imagesDir: string;
  shellJob: boolean;
  /** Every file entry of the image, by id (for kinds that need another object first). */
  files: Map<number, FileEntry>;
  /** The REG entry that shares id `id` with a kind's own entry (a tun file's path and flags). */
  regTwin?: (id: number) => FileEntry | undefined;
  /** Per-restore state of pipes and FIFOs: their contents, and the pipes made for them. */
  pipes: PipeRestoreState;
  /** Recreates ghost files (set by OpenFiles.open). */
  ghosts?: GhostRestorer;
  /** Makes a process with a dead pid while a file of its /proc/PID is opened; returns what ends it. */
  holdPid?: (pid: number) => () => void;
  /** Makes a Unix socket pair whose SO_PEERCRED is `cred` (undefined: its pid is taken, make it yourself). */
  socketPairAs?: (type: number, cred: { pid: number; uid: number; gid: number }) => [number, number] | undefined;
  /** The shared memory objects made for the restore (restore/shmem-objects.ts), by memfd inode id. */
  memfds?: { fdOfInode(inodeId: number): number | undefined; takeCreated?(inodeId: number): boolean };
  /** Per-restore state of Unix sockets: their queues, and ends made for entries still to open. */
  unix: UnixRestoreState;
  /** The terminals of the image, and the pty pairs made for it. */
  ttys: TtyRestoreState;
  /** TCP: the options, and the connections in repair mode until the tree runs. */
  tcp: TcpRestore;
  /** The pid (in the images) of the process whose thread, not its leader, is `tid`. */
  threadLeader?: (tid: number) => number | undefined;
  /** A file of the network namespace the images number `nsId` (/proc/PID/ns/net), where it is one of the tree's other than its root's. */
  netnsOf?: (nsId: number) => string | undefined;
  /** Stasis's pid of the task the images call `pid`, once the tree is made (files opened late). */
  taskPid?: (pid: number) => number | undefined;
  /** Processes standing in for those reaped before the dump, for their pidfds. */
  deadPids?: DeadPids;
  /** The fd in stasis of a file object opened already (for files passed in a socket's queue). */
  fdOf?: (fileId: number) => number | undefined;
  /** CRIU's --inherit-fd: fds of stasis that stand for files of the images, by key. */
  inherit?: InheritedFds;
}

export type OpenResult = { status: 'done'; fd: number } | { status: 'retry' };

export interface FileKind {
  name: string;
  type: FdTypes;
  detect(p: FdProbe, ctx: DumpFileCtx): boolean;
  /**
   * The file entry for a newly seen object (its id is set by the caller). A list holds the
   * entries the object's own entry names first (a FIFO's REG entry), and its own entry last.
   */
  dump(p: FdProbe, ctx: DumpFileCtx, id: number): FileEntry | FileEntry[];
  /** Opens the object in stasis; the caller installs it at every fd that shares it. */
  open(e: FileEntry, ctx: RestoreFileCtx): OpenResult;
  /** CRIU's name of the file, which --inherit-fd keys match (`pipe:[ID]`, a path without its `/`); kinds without one are never inherited. */
  inheritKey?(e: FileEntry, ctx: RestoreFileCtx): string | undefined;
  /** The file from the inherited fd `fd` (default: a dup of it). */
  openInherited?(e: FileEntry, fd: number, key: string): number;
  /** Once every object is open (or the opening failed): releases what open() kept for later entries. */
  finish?(ctx: RestoreFileCtx): void;
  /** Once every file of the set is open: work that needed files opened after this kind's own (a socket queue passing itself). */
  settle?(ctx: RestoreFileCtx): void;
}
