// The library surface's option and result types.
import type { Log } from '../log.js';
import type { CgroupMode } from '../cgroup/dump-cgroups.js';
import type { CgroupRoot } from '../cgroup/restore-cgroups.js';

export type { Log, LogLevel } from '../log.js';

export interface Progress {
  phase: string;
  done: number;
  total: number;
}

/**
 * CRIU's notify points (its action scripts, and the NOTIFY messages of its RPC), in the order a
 * run reaches them. A dump: pre-dump, network-lock, post-dump (then network-unlock when the
 * tree runs on); a pre-dump: pre-dump, post-dump; a restore: pre-restore, setup-namespaces
 * (the root task exists in its namespaces), post-setup-namespaces (its mounts are made),
 * post-restore, network-unlock, pre-resume, post-resume.
 */
export type NotifyEvent =
  | 'pre-dump' | 'network-lock' | 'post-dump' | 'network-unlock'
  | 'pre-restore' | 'setup-namespaces' | 'post-setup-namespaces' | 'post-restore' | 'pre-resume' | 'post-resume';

/**
 * Called at each notify point; `pid` is the root task's where CRIU gives one. Throwing (or a
 * returned promise that rejects) fails the run. The run waits for it: in the engine thread
 * until the callback has returned and its promise has settled; the in-thread (`...Sync`)
 * functions do not wait for a promise.
 */
export type Notify = (event: NotifyEvent, pid?: number) => void | Promise<void>;

/** What every run takes beside its options: where its events go, and how to cancel it. */
export interface RunHooks {
  /** Progress events, on the caller's thread, at most about every 20 ms per phase. */
  onProgress?: ((p: Progress) => void) | undefined;
  /** Where the steps are logged (CRIU's -o/-v); default: nowhere. */
  log?: Log | undefined;
  notify?: Notify | undefined;
  /**
   * Cancels the run at its next safe point (at least once per 4 MiB of memory read): the
   * promise rejects with E_ABORTED. A dump or pre-dump leaves the tree running as it was
   * (thawed, untraced, nothing of the images left); a restore stops before the tree runs and
   * leaves no process behind. Ignored by the in-thread (`...Sync`) functions, which block the
   * thread that could abort them.
   */
  signal?: AbortSignal | undefined;
}

export interface DumpOptions extends RunHooks {
  pid: number;
  imagesDir: string;
  /** Leave the tree running after the dump (default: kill it). */
  leaveRunning?: boolean;
  /** The task's controlling terminal is re-attached to the restoring terminal. */
  shellJob?: boolean;
  /** Largest deleted or replaced file whose contents the image keeps, in bytes (default 1 MiB, CRIU's). */
  ghostLimit?: number;
  /**
   * An open file that lost its name but keeps links elsewhere is linked back under a
   * temporary name beside it, which restore removes (CRIU's --link-remap); without, such a
   * file fails the dump.
   */
  linkRemap?: boolean;
  /**
   * The previous image set (a pre-dump or a dump), relative to `imagesDir` unless absolute,
   * as CRIU's --prev-images-dir: pages unchanged since are in_parent entries.
   */
  prevImagesDir?: string | undefined;
  /** Track memory changes after this dump, so that a later dump can use it as its parent (with leaveRunning). */
  trackMem?: boolean;
  /** The dirty-tracking backend; 'auto' (default) takes the best the kernel offers. */
  trackBackend?: TrackBackend | undefined;
  /** Dump TCP connections (CRIU's --tcp-established); without it a tree with one is refused. */
  tcpEstablished?: boolean | undefined;
  /**
   * Datagram sockets connected to a bound socket outside the tree are dumped, to be connected
   * to its name again at restore (CRIU's --ext-unix-sk); without it they are refused.
   */
  extUnixSk?: boolean | undefined;
  /**
   * Pipes whose other end is outside the tree, by CRIU's key (`pipe:[ID]`, ID its inode), to be
   * given back at restore with `inheritFds` (CRIU's --inherit-fd); without, such a pipe is
   * refused (a restore would leave it unconnected).
   */
  externalPipes?: readonly string[] | undefined;
  /**
   * A pipe at fd 0, 1 or 2 of the tree's root whose other end is outside is taken as in
   * `externalPipes` (the RPC's: runc gives its init's stdio pipes back with inherit_fd).
   */
  stdioPipesExternal?: boolean | undefined;
  /** Dump TCP connections to be restored closed (CRIU's --tcp-close). */
  tcpClose?: boolean | undefined;
  /** Leave out connections a listener has not accepted yet (CRIU's --skip-in-flight): they are lost. */
  skipInFlight?: boolean | undefined;
  /** How connections are kept quiet from the dump to the restore (CRIU's --network-lock; default iptables). */
  networkLock?: NetworkLockMethod | undefined;
  /**
   * CLONE_NEW* flags of namespaces of the tree's own that are neither checked nor dumped, to
   * be restored new and empty (CRIU's --empty-ns; only the network namespace).
   */
  emptyNs?: number | undefined;
  /** CRIU's --manage-cgroups: `ignore` dumps the tasks' cgroups without their directories (default `soft`). */
  manageCgroups?: CgroupMode | undefined;
  /** CRIU's --cgroup-root at dump: the hierarchy (or every one) is dumped from this cgroup down, empty ones too. */
  cgroupRoots?: CgroupRoot[] | undefined;
  /** CRIU's --freeze-cgroup: the tree is frozen through this cgroup directory (v2, or the v1 freezer's), which must hold its processes and no other. */
  freezeCgroup?: string | undefined;
  /** CRIU's --root: the tree's root mount will be given at restore (a container's root). */
  root?: string | undefined;
  /** CRIU's --ext-mount-map at dump: mountpoint (as the tree sees it) to the name the external mount gets in the image. */
  extMounts?: ReadonlyMap<string, string> | undefined;
  /**
   * CRIU's --ext-mount-map auto (--external mnt[]): a mount that shows what a mount of stasis's
   * own namespace shows is external, bound at restore from where stasis sees it; `sharing`
   * (mnt[]:s) and `masters` (mnt[]:m) let shared mounts and slaves of stasis's peer groups be so too.
   */
  extAuto?: { sharing: boolean; masters: boolean } | undefined;
  /** CRIU's --external dev[MAJOR/MINOR]:KEY at dump: a filesystem on that device (one stasis cannot mount by itself) is kept as dev[KEY], mounted at restore from the device given for KEY. */
  extDevs?: ReadonlyMap<string, string> | undefined;
}

export type { CgroupMode } from '../cgroup/dump-cgroups.js';
export type { CgroupRoot } from '../cgroup/restore-cgroups.js';

export type NetworkLockMethod = 'iptables' | 'nftables' | 'skip';

export type TrackBackend = 'auto' | 'uffd' | 'soft-dirty' | 'hash';

export interface PreDumpOptions extends RunHooks {
  pid: number;
  imagesDir: string;
  /** The previous pre-dump, relative to `imagesDir` unless absolute (chains of pre-dumps). */
  prevImagesDir?: string | undefined;
  trackBackend?: TrackBackend | undefined;
  /** CRIU's --freeze-cgroup: the tree is frozen through this cgroup directory (v2, or the v1 freezer's), which must hold its processes and no other. */
  freezeCgroup?: string | undefined;
}

export interface PreDumpResult {
  pids: number[];
  pagesScanned: number;
  pagesWritten: number;
  /** Pages left to the parent image set (unchanged since it). */
  pagesSkippedParent: number;
  imageBytes: number;
  /** The dirty-tracking backend that tracks the tree from now on. */
  trackBackend: string | null;
  /** From the start of freezing until the tree ran again. */
  downtimeMs: number;
  totalMs: number;
}

export interface DumpResult {
  pids: number[];
  pagesScanned: number;
  pagesWritten: number;
  /** Shared memory objects (shmem inodes) dumped once each, and their pages. */
  shmemObjects: number;
  shmemPagesScanned: number;
  shmemPagesWritten: number;
  imageBytes: number;
  kcmpCalls: number;
  freezeMs: number;
  frozenMs: number;
  totalMs: number;
  /** Pages left to the parent image set (unchanged since it). */
  pagesSkippedParent: number;
  /** From the start of freezing until the tree was thawed or killed. */
  downtimeMs: number;
  /** The dirty-tracking backend that told changed pages from unchanged ones, if any. */
  trackBackend: string | null;
}

export interface RestoreOptions extends RunHooks {
  imagesDir: string;
  /**
   * Leave the tree to itself. Without it, stasis reaps the root when it exits: `restoreSync`
   * returns only then (with `exit`); `restore()` resolves once the tree runs, keeps the
   * process alive until the root has exited, and `wait()` tells how it ended.
   */
  detach?: boolean;
  /**
   * CRIU's --restore-sibling: the root is a child of this process's parent, which waits for it
   * (runc); implies `detach`. The process must not be the init of its pid namespace.
   */
  sibling?: boolean | undefined;
  shellJob?: boolean;
  /** CRIU's --root: the tree's root mount is a bind of this directory (a tree dumped with a mount namespace of its own). */
  root?: string | undefined;
  /** CRIU's --ext-mount-map at restore: the host path each external mount of the image is bound from, by its name. */
  extMounts?: ReadonlyMap<string, string> | undefined;
  /** CRIU's --ext-mount-map auto at restore: an autodetected external mount that no name maps is bound from where the dump saw it. */
  extAuto?: boolean | undefined;
  /** CRIU's --external dev[KEY]:DEVICE at restore: the device each filesystem the image keeps as dev[KEY] is mounted from. */
  extDevs?: ReadonlyMap<string, string> | undefined;
  /** CRIU's --external for network devices at restore, by key (`veth[IN]` -> `OUT[@BRIDGE]`, `macvlan[IN]` -> the host's device). */
  netExternals?: ReadonlyMap<string, string> | undefined;
  /** Skip the checksums of the images (stasis-sums.json), checked by default before anything is created. */
  noVerify?: boolean;
  /** Restore TCP connections (CRIU's --tcp-established). */
  tcpEstablished?: boolean | undefined;
  /** Connect sockets to the sockets outside the tree they were connected to, by name (CRIU's --ext-unix-sk; needed for images that have them). */
  extUnixSk?: boolean | undefined;
  /** Restore TCP connections closed (CRIU's --tcp-close; needed for images dumped with it). */
  tcpClose?: boolean | undefined;
  /**
   * CRIU's --inherit-fd fd[N]:KEY: every fd of the images on the file KEY names gets this
   * process's fd N instead of a file made anew. KEY as CRIU names files: `pipe:[ID]` for a
   * pipe (reopened with the image's access mode; its contents in the images are not written),
   * a regular file's or FIFO's path without its leading `/` (a dup of fd N).
   */
  inheritFds?: readonly InheritFd[] | undefined;
  /** Called once the tree runs, with its root's pid, before a restore that waits for it does. */
  onRestored?: ((pid: number) => void) | undefined;
  /**
   * Namespaces the root joins instead of making new ones (CRIU's --join-ns): the kind and
   * the namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`).
   */
  joinNs?: { ns: 'net' | 'ipc' | 'uts'; file: string }[] | undefined;
  /** CLONE_NEWNET: the network namespace is made new and left empty, whatever the images hold (CRIU's --empty-ns net). */
  emptyNs?: number | undefined;
  /** CRIU's --manage-cgroups: how the tasks' cgroups are found or made (default `soft`; restore-cgroups.ts). */
  manageCgroups?: CgroupMode | undefined;
  /** CRIU's --cgroup-root: where a hierarchy's (or, without a controller, every hierarchy's) dumped cgroups go. */
  cgroupRoots?: CgroupRoot[] | undefined;
  /**
   * CRIU's --lazy-pages: the tasks run before their private anonymous memory is in; a
   * filler thread puts each page in when it is first touched and the rest in address order.
   * The restore returns (with `detach`) once every page is in.
   */
  lazyPages?: boolean | undefined;
}

/** One --inherit-fd: this process's fd `fd` stands for the file `key` of the images. */
export interface InheritFd {
  fd: number;
  key: string;
}

export type ExitStatus = { kind: 'exited'; code: number } | { kind: 'signaled'; signal: number };

export interface RestoreResult {
  pid: number;
  pids: number[];
  /** `restoreSync` without `detach`: how the root task ended. */
  exit?: ExitStatus;
  totalMs: number;
  /** With `lazyPages`: when the tree ran and when its memory was full (ms from the start), and what the filler did. */
  lazy?: { runningMs: number; fillMs: number; faults: number; zero: number; copied: number; events: number; early: number };
}

/** What `restore()` resolves with: the tree runs. */
export interface RestoredTree {
  /** The root task's pid. */
  pid: number;
  /** Every task's pid, the root first. */
  pids: number[];
  /** From the call until the tree ran. */
  totalMs: number;
  /** With `lazyPages`: as RestoreResult's. */
  lazy?: NonNullable<RestoreResult['lazy']>;
  /**
   * Settles when the root task exits (it is a child of this process, reaped by stasis).
   * For a detached restore, the first call starts watching it: do not reap it yourself then.
   */
  wait(): Promise<ExitStatus>;
}
