// What a dump or a restore keeps about TCP connections from the first socket to the end of the
// run: the options (CRIU's --tcp-established, --tcp-close, --skip-in-flight, --network-lock),
// the network lock, and the sockets in repair mode, which stay so until the run decides their
// fate. A dump that kills its tree closes them in repair mode (nothing is sent: the peer sees
// nothing until the restore) and leaves them locked; a dump that fails or leaves the tree
// running unlocks them and turns repair off (the connections carry on). A restore turns repair
// off once every task has its sockets, just before the tree runs, and unlocks.
import type { PayloadItem } from '../image/image-kinds.js';
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { InventoryEntry } from '../image/gen/stasis/inventory_pb.js';
import { formatVersionOf } from '../dump/format.js';
import { StasisError } from '../errors.js';
import type { TcpStreamEntry } from '../image/gen/stasis/tcp-stream_pb.js';
import { closeFd, inNamespace, setsockoptInt, CLONE_NEWNET, SOL_SOCKET, SO_REUSEADDR, SyscallError } from '../sys/index.js';
import type { Log } from '../log.js';
import { NetworkLock, describeConn, nftTableName, LOCK_METHOD_CODES, type Conn, type LockMethod } from './network-lock.js';
import { repairOff, repairOn } from './tcp-repair.js';

export interface TcpDumpOptions {
  /** --tcp-established: connections are dumped (with repair mode); without it they are refused. */
  established: boolean;
  /** --tcp-close: connections are dumped as sockets to restore closed, without their state. */
  close: boolean;
  /** --skip-in-flight: connections a listener has not accepted yet are left out. */
  skipInFlight: boolean;
  lock: LockMethod;
}

interface Repaired {
  fd: number;
  reuseaddr: boolean;
  conn: Conn;
}

/** The tree's own network namespace: `link` as /proc shows it, `path` a file of it. */
export interface OwnNetns {
  link: string;
  path: string;
}

/** Runs `fn` in network namespace `ns` (a socket made there is of it), or where stasis is without one. */
export function inNetnsOf<T>(ns: OwnNetns | undefined, fn: () => T): T {
  return ns ? inNamespace(ns.path, 'net', CLONE_NEWNET, fn) : fn();
}

export class TcpDump {
  /** tcp-stream images to write, by socket inode. */
  readonly streams = new Map<number, PayloadItem<TcpStreamEntry>>();
  private readonly repaired: Repaired[] = [];
  /** The tree's own network namespace, dumped with it: its sockets are looked at and locked from within it. */
  netns: OwnNetns | undefined;

  constructor(readonly opts: TcpDumpOptions, readonly lock: NetworkLock, private readonly log: Log) {}

  /** Sets the tree's own network namespace (its sockets' diag and lock run in it). */
  setNetns(ns: OwnNetns): void {
    this.netns = ns;
    this.lock.netns = ns.path;
  }

  inNetns<T>(fn: () => T): T {
    return inNetnsOf(this.netns, fn);
  }

  /**
   * Locks a connection and puts its socket in repair mode; `fd` (stasis's copy of the task's
   * socket) is kept open until the dump ends; on failure the dump's release() undoes it.
   */
  repair(fd: number, conn: Conn, reuseaddr: boolean): void {
    this.lock.lock(conn);
    repairOn(fd);
    this.repaired.push({ fd, reuseaddr, conn });
    this.log.debug(`tcp: ${describeConn(conn)} in repair mode`);
  }

  /** The tree was killed: its connections end silently (closed in repair mode), still locked. */
  killed(): void {
    for (const r of this.repaired) closeFd(r.fd);
    this.repaired.length = 0;
  }

  /** The tree runs on (a failed dump, or --leave-running): unlock, repair off, as they were. */
  release(): void {
    this.lock.unlockOwn();
    for (const r of this.repaired) releaseSocket(r, this.log);
    this.repaired.length = 0;
  }
}

function releaseSocket(r: Repaired, log: Log): void {
  try {
    repairOff(r.fd);
    // Leaving repair mode resets SO_REUSEADDR.
    setsockoptInt(r.fd, SOL_SOCKET, SO_REUSEADDR, r.reuseaddr ? 1 : 0);
  } catch (err) {
    log.error(`tcp: cannot turn repair off for ${describeConn(r.conn)}: ${err instanceof SyscallError ? err.message : String(err)}`);
  } finally {
    closeFd(r.fd);
  }
}

export interface TcpRestoreOptions {
  /** --tcp-established: connections are restored. */
  established: boolean;
  /** --tcp-close: connections are restored closed. */
  close: boolean;
}

export class TcpRestore {
  private readonly repaired: Repaired[] = [];
  private unlocked = false;
  /** The tree has a network namespace of its own (new at restore): the lock is this restore's, in it. */
  private own = false;
  /** The new network namespace of the tree's own, once its root exists: its sockets are made in it. */
  netns: OwnNetns | undefined;

  /** `conns`: every connection of the image set (each locked by the dump, unless it chose not to). */
  constructor(readonly opts: TcpRestoreOptions, readonly lock: NetworkLock, readonly conns: readonly Conn[], private readonly log: Log) {}

  /**
   * The TCP side of restoring an image set: its connections (CRIU's tcp_connection: a TCP
   * socket with a peer), and the lock the dump put on them (the inventory's method; CRIU's
   * images without one used iptables).
   */
  static fromImages(files: Map<number, FileEntry>, inv: InventoryEntry, rootPid: number, opts: TcpRestoreOptions, log: Log): TcpRestore {
    if (inv.tcpClose && !opts.close) throw new StasisError('E_BAD_ARGS', 'The images were dumped with --tcp-close: restore them with --tcp-close too');
    const conns = [...files.values()].flatMap((f) => {
      const k = f.isk;
      return k && k.proto === 6 && k.dstPort ? [{ family: k.family, src: k.srcAddr, srcPort: k.srcPort, dst: k.dstAddr, dstPort: k.dstPort }] : [];
    });
    const code = inv.networkLockMethod ?? LOCK_METHOD_CODES.iptables;
    const method = (Object.keys(LOCK_METHOD_CODES) as LockMethod[]).find((m) => LOCK_METHOD_CODES[m] === code);
    if (!method) throw new StasisError('E_CORRUPT', `inventory.img names network lock method ${code}, which stasis does not know`);
    const stasisImages = formatVersionOf(inv.dumpCriuRunId) !== null;
    const table = nftTableName(rootPid, stasisImages ? undefined : inv.dumpCriuRunId);
    // Dumped with --tcp-close, nothing was locked.
    return new TcpRestore(opts, new NetworkLock(method, table, log), inv.tcpClose ? [] : conns, log);
  }

  inNetns<T>(fn: () => T): T {
    return inNetnsOf(this.netns, fn);
  }

  /**
   * The tree had a network namespace of its own: the lock the dump put in it died with it
   * (nothing of it to unlock), and the new one is locked again by lockNetns() once it exists.
   */
  ownNetns(): void {
    this.unlocked = true;
    this.own = true;
  }

  /**
   * The tree's new network namespace exists, its rules restored, and none of its sockets yet:
   * its inet sockets are made in it, and each connection of the image is locked in it as the
   * dump locked it. Unlocked, a restored socket's data goes out (sent anew out of repair mode)
   * before its peer is restored, the namespace's stack answers with a reset, and the socket
   * fails with EPIPE; CRIU locks a new namespace the same way (network_lock_internal).
   */
  lockNetns(ns: OwnNetns): void {
    this.netns = ns;
    this.lock.netns = ns.path;
    this.lock.passMarked = true;
    if (!this.opts.established || !this.conns.length) return;
    this.unlocked = false;
    try {
      for (const c of this.conns) this.lock.lock(c);
    } catch (err) {
      throw err instanceof StasisError ? new StasisError('E_RESTORE_FAILED', `${err.message} (in the tree's new network namespace)`, { cause: err }) : err;
    }
  }

  /** A restored socket in repair mode (stasis's fd, which the tasks share). */
  add(fd: number, conn: Conn, reuseaddr: boolean): void {
    this.repaired.push({ fd, reuseaddr, conn });
  }

  /** Every task has its sockets and the tree is about to run: unlock, then repair off (CRIU's order). */
  finish(): void {
    this.unlock();
    for (const r of this.repaired) {
      repairOff(r.fd);
      setsockoptInt(r.fd, SOL_SOCKET, SO_REUSEADDR, r.reuseaddr ? 1 : 0);
      this.log.debug(`tcp: ${describeConn(r.conn)} out of repair mode`);
    }
    this.repaired.length = 0;
  }

  /** The restore failed: the connections are lost (their sockets close in repair mode); nothing stays locked. */
  abort(): void {
    if (this.conns.length) this.log.warn(`restore failed: the network is unlocked, ${this.conns.length} TCP connection(s) of the image are lost`);
    this.repaired.length = 0;
    this.unlock();
  }

  private unlock(): void {
    if (this.unlocked || !this.conns.length) return;
    this.unlocked = true;
    // In the tree's new namespace, what this restore locked (and what iptables made for it).
    if (this.own) this.lock.unlockOwn();
    else this.lock.unlockAll(this.conns);
  }
}
