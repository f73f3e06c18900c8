// The contract of a namespace kind, as files/kind.ts is for fd kinds: the dump of the tree's
// namespace of that kind into its images (named by the ns id of ids-<pid>.img), and its
// restore into the namespace the root task was just created in. A kind without `dump` is
// refused when the tree has a namespace of its own of that kind.
import type { Log } from '../log.js';
import type { NestedMntRestore } from './mnt-nested.js';
import type { CrossGroup } from './mnt-sharing.js';
import type { NetsMade } from './net-nested.js';

export type NsName = 'pid' | 'net' | 'ipc' | 'uts' | 'time' | 'mnt' | 'user' | 'cgroup';

/** A translation of uids and gids between the tree's user namespace and stasis's (ns/user.ts). */
export interface IdView {
  uid(id: number): number;
  gid(id: number): number;
}

export interface NsDumpCtx {
  imagesDir: string;
  log: Log;
  /** Owners as the tree's user namespace sees them, from stasis's view. */
  users?: IdView;
  /** Records an image file as written (a failed dump removes it). */
  note: (file: string) => string;
  /** How the tree's mounts will be given back (the mount namespace's external mounts by name). */
  mounts: NsCheckOpts;
  /** The id of a namespace by its link, as ids-<pid>.img numbers it (a veth's peer in another namespace of the tree names it). */
  nsIdOf?: (link: string) => number;
}

/** What the dump is told of how the tree's mounts will be given back (CRIU's --root, --ext-mount-map). */
export interface NsCheckOpts {
  hasRoot: boolean;
  extMounts: ReadonlyMap<string, string>;
  /** CRIU's --ext-mount-map auto: mounts that show what stasis's own show are external (external.ts). */
  extAuto?: { sharing: boolean; masters: boolean } | undefined;
  /** CRIU's --external dev[MAJOR/MINOR]:KEY at dump: a filesystem on that device is mounted again at restore from the device dev[KEY] names. */
  extDevs?: ReadonlyMap<string, string> | undefined;
  /** The tree's mount namespaces, the root's first, each by a task in it (their peer groups are planned together). */
  mntSpaces?: readonly { link: string; pid: number }[];
  /**
   * The Unix socket files tmpfs mounts hold, which their archives leave out, by `dev:ino`: what
   * refuses the dump unless a socket of the tree is bound to it (restore binds it again).
   */
  tmpfsSockets?: Map<string, string>;
}

export interface NsRestoreCtx {
  imagesDir: string;
  log: Log;
  /** The images' owners (the tree's user namespace's view) in stasis's, which sets them. */
  users?: IdView;
  /** CRIU's --root: what the tree's root mount is made of. */
  root?: string | undefined;
  /** CRIU's --ext-mount-map at restore: the host path of each external mount, by its name in the image. */
  extMounts?: ReadonlyMap<string, string> | undefined;
  /** CRIU's --ext-mount-map auto: an external mount no name maps is bound from the host path its image entry keeps. */
  extAuto?: boolean | undefined;
  /** CRIU's --external dev[KEY]:DEVICE at restore: the device a filesystem kept as dev[KEY] is mounted from. */
  extDevs?: ReadonlyMap<string, string> | undefined;
  /** CRIU's --external for network devices: `veth[IN]` -> `OUT[@BRIDGE]`, `macvlan[IN]` -> the host's device. */
  netExternals?: ReadonlyMap<string, string> | undefined;
  /** The `syscall; int3` code of the restored root (create-task.ts), which makes its mounts. */
  rootCode?: bigint;
  /** Makes pty `index` through the devpts node `ptmx` before a mount binds its slave (the terminals' restore takes it). */
  makePty?: (index: number, ptmx: string) => void;
  /** The tree's mount namespaces other than its root's, made with the root's (mnt-nested.ts). */
  nestedMnt?: NestedMntRestore;
  /** The tree's network namespaces as they are made (net-nested.ts): a veth whose peer is in another of them is made with its peer there. */
  nets?: NetsMade;
  /** In a nested mount namespace: its binds of the root namespace's mounts, by mount id: their names, and what takes the detached clone each is moved from (its path). */
  outerBinds?: ReadonlyMap<number, { key: string; clone: () => string }>;
  /**
   * The peer groups that span the tree's mount namespaces (by image id), stasis's fds on their
   * mounts as each namespace is made (the root's restore joins them), and the fds their slaves'
   * tasks hold on them (the task, by host pid, and its code), made slaves by the task at the end.
   */
  peers?: { cross: readonly CrossGroup[]; fds: Map<number, { fd: number; pid: number }>; taskFds: Map<number, { fd: number; pid: number; code: bigint }> };
}

export interface NsKind {
  name: NsName;
  /** Its CLONE_NEW* flag. */
  flag: number;
  /** What of the namespace of task `pid` (the root of `tree`) cannot be dumped (checked before anything is written), or undefined. */
  check?: (pid: number, tree: number[], opts: NsCheckOpts) => string | undefined;
  /**
   * What must be read of the namespace before the dump changes anything in it (the network
   * lock adds rules), with the tree frozen: its state for `dump`, or why it cannot be dumped.
   * (`peersUp`, of a network namespace: its veths whose peer in another of the tree's is up.)
   */
  capture?: (pid: number, tree: number[], peersUp?: ReadonlySet<number>) => { why?: string; state?: unknown };
  /** For a tree in stasis's own namespace of this kind: what of it the tree uses that is not the tree's to restore, or undefined. */
  hostCheck?: (tree: number[]) => string | undefined;
  /** Writes the images of the namespace of task `pid`, whose ns id is `id`. */
  dump?: (ctx: NsDumpCtx, pid: number, id: number, captured: unknown) => void;
  /** Fills the new namespace the restored root (host pid `hostPid`) was created in. */
  restore?: (ctx: NsRestoreCtx, hostPid: number, id: number) => void;
}
