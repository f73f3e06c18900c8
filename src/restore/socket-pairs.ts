// Unix socket pairs made by a task with the pid and credentials of the one that made the dumped
// pair: SO_PEERCRED reports who called socketpair() (net/unix/af_unix.c, init_peercred takes
// the caller's tgid, euid and egid), so a pair made by stasis would name stasis. The pid is
// held by a stub task (the dumped tree is not made yet, so its pids are free; a pid of a task
// gone long ago works the same), which takes the euid and egid for the call and gives the pair
// to stasis with pidfd_getfd. Holders end once every file is open, before the tree is made.
// A tree with a network namespace of its own opens its sockets once it is made: its task of
// that pid makes the pair then, in the namespace (and in its pid namespace, as it numbers it).
import {
  Injector, closeFd, kill, pidfdGetfd, pidfdOpen, waitPid, SyscallError, AF_UNIX,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { Log } from '../log.js';
import { createRootTask, pidIsFree, type NewTask } from './create-task.js';

export interface Cred {
  pid: number;
  uid: number;
  gid: number;
}

export class SocketPairs {
  private readonly holders = new Map<number, Injector | null>();
  /**
   * Once the tree is made (a network namespace of its own: its pairs are opened then, and must
   * be made in it): the task of the tree the images call `pid`, which makes its pairs itself,
   * so SO_PEERCRED names it as its namespaces number it.
   */
  treeTask: ((pid: number) => NewTask | undefined) | undefined;

  constructor(private readonly log?: Log) {}

  /**
   * A pair of `type` whose SO_PEERCRED is `cred`; undefined where its pid is held by a live
   * process (the caller makes the pair itself then, and says so).
   */
  make(type: number, cred: Cred): [number, number] | undefined {
    if (this.treeTask) {
      const t = this.treeTask(cred.pid);
      if (!t) return undefined;
      const inj = new Injector(t.pid, { code: t.code, codeInPlace: true });
      try {
        return this.pairIn(inj, type, cred);
      } finally {
        inj.end();
      }
    }
    const inj = this.holder(cred.pid);
    if (!inj) return undefined;
    return this.pairIn(inj, type, cred);
  }

  /** The pair made by the task `inj` drives, with `cred`'s effective ids, taken into stasis. */
  private pairIn(inj: Injector, type: number, cred: Cred): [number, number] {
    const euid = process.geteuid?.() ?? 0, egid = process.getegid?.() ?? 0;
    // The gid first: without euid 0 the task may not change it. Real and saved ids stay
    // stasis's, so the effective ones (and the capabilities) come back after.
    inj.must('setresgid', -1, cred.gid, -1);
    inj.must('setresuid', -1, cred.uid, -1);
    let fds: Buffer;
    try {
      const at = inj.put(Buffer.alloc(8));
      inj.must('socketpair', AF_UNIX, type, 0, at);
      fds = inj.mem.readExact(at, 8);
    } finally {
      inj.must('setresuid', -1, euid, -1);
      inj.must('setresgid', -1, egid, -1);
      inj.resetScratch();
    }
    const theirs = [fds.readInt32LE(0), fds.readInt32LE(4)];
    const pidfd = pidfdOpen(inj.pid);
    const ours: number[] = [];
    try {
      for (const fd of theirs) ours.push(pidfdGetfd(pidfd, fd));
    } catch (err) {
      for (const fd of ours) closeFd(fd);
      throw err;
    } finally {
      closeFd(pidfd);
      for (const fd of theirs) inj.call('close', fd);
    }
    return [ours[0]!, ours[1]!];
  }

  private holder(pid: number): Injector | null {
    let inj = this.holders.get(pid);
    if (inj !== undefined) return inj;
    inj = null;
    if (pid > 0 && pidIsFree(pid)) {
      try {
        const t = createRootTask(pid);
        inj = new Injector(t.pid, { code: t.code, codeInPlace: true });
      } catch (err) {
        if (!(err instanceof StasisError && err.code === 'E_PID_TAKEN')) throw err;
      }
    }
    if (!inj) this.log?.warn(`pid ${pid} is taken: socket pairs it made are made by stasis, and SO_PEERCRED names stasis`);
    this.holders.set(pid, inj);
    return inj;
  }

  /** Ends the holders (their pids are free again for the tree). */
  end(): void {
    for (const inj of this.holders.values()) {
      if (!inj) continue;
      try {
        kill(inj.pid, 9);
      } catch (err) {
        if (!(err instanceof SyscallError)) throw err;
      }
      while (waitPid(inj.pid)?.kind === 'stopped');
    }
    this.holders.clear();
  }
}
