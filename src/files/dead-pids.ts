// Stand-ins for processes reaped before the dump, which pidfds still refer to (CRIU's
// create_tmp_process): a child of stasis, alive while its pidfds are opened, then made to
// die as the process did (PIDFD_GET_INFO's exit status, kept in the image) and reaped, so
// its pidfds are stale again: poll says POLLIN | POLLHUP, fdinfo says Pid: -1. One stand-in
// per struct pid (pidfs inode): pidfds of one dead process share one inode again. In a tree
// with a pid namespace of its own the stand-in is made in it (nsenter forks it there, and
// dies as it does), or PIDFD_GET_INFO from inside would not answer for it.
import fs from 'node:fs';
import { StasisError } from '../errors.js';
import { closeFd, decodeStatus, kill, pidfdExitStatus, pidfdOpen, pipe2, spawnTask, waitPid } from '../sys/index.js';
import { sleepSync } from '../sys/sleep.js';

const O_CLOEXEC = 0o2000000, SIGKILL = 9;

interface StandIn {
  pid: number;
  /** The child of stasis to reap: the stand-in, or nsenter, its parent, which ends as it does. */
  waiter: number;
  /** A pidfd of it kept by stasis, which tells how it really died. */
  witness: number;
  /** The write end of its stdin: closing it lets the stand-in exit. */
  stdin: number;
  status: number;
}

/** How a wait status reads in a message: `exit code 3`, `signal 9`. */
export function describeStatus(status: number): string {
  const w = decodeStatus(0, status);
  if (w.kind === 'exited') return `exit code ${w.code}`;
  if (w.kind === 'signaled') return `signal ${w.signal}${w.core ? ' (core dumped)' : ''}`;
  return `status 0x${status.toString(16)}`;
}

/** The stand-ins of one restore, by the pidfs inode of the process each stands in for. */
export class DeadPids {
  private readonly byIno = new Map<bigint, StandIn>();
  private readonly all: StandIn[] = [];

  /** `pidNsHolder` gives a task of the tree's own pid namespace, where there is one. */
  constructor(private readonly pidNsHolder: () => number | undefined = () => undefined) {}

  /**
   * The pid of the stand-in for the dead process with pidfs inode `ino` (0: unknown, a
   * stand-in of its own), made on first use; `status` is how it died (SIGKILL if unknown).
   */
  pidFor(ino: bigint, status = SIGKILL): number {
    const had = ino ? this.byIno.get(ino) : undefined;
    if (had) {
      if (had.status !== status) throw new StasisError('E_CORRUPT', `Pidfds of one dead process (pidfs inode ${ino}) say it died with ${describeStatus(had.status)} and with ${describeStatus(status)}`);
      return had.pid;
    }
    const w = decodeStatus(0, status);
    if (w.kind === 'stopped' || (w.kind === 'signaled' && w.core)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore a pidfd of a process that died with ${describeStatus(status)}: stasis makes processes that exit or are killed, without a core dump`);
    }
    const [r, wr] = pipe2(O_CLOEXEC);
    let waiter: number;
    const ns = this.pidNsHolder();
    try {
      // It waits for its stdin to close, then exits with the code; a signal kills it in `read`.
      // (No core dump for nsenter either, which kills itself with the stand-in's signal.)
      const code = w.kind === 'exited' ? w.code : 0;
      const script = `read _; exit ${code}`;
      const argv = ns === undefined ? ['sh', '-c', `ulimit -c 0 2>/dev/null; ${script}`]
        : ['sh', '-c', 'ulimit -c 0 2>/dev/null; exec nsenter "--target=$0" --pid -- sh -c "$1"', String(ns), script];
      waiter = spawnTask(argv, { stdin: { fd: r }, stdout: { path: '/dev/null' }, stderr: { path: '/dev/null' }, cwd: '/' });
    } catch (err) {
      closeFd(wr);
      throw err;
    } finally {
      closeFd(r);
    }
    let pid = waiter, witness = -1;
    try {
      if (ns !== undefined) pid = childOf(waiter);
      witness = pidfdOpen(pid);
    } catch (err) {
      closeFd(wr);
      kill(waiter, SIGKILL);
      waitPid(waiter);
      throw err;
    }
    const s = { pid, waiter, witness, stdin: wr, status };
    this.all.push(s);
    if (ino) this.byIno.set(ino, s);
    return pid;
  }

  /** Every stand-in dies as its process did, and is reaped; a death that differs fails the restore. */
  end(): void {
    const wrong: string[] = [];
    for (const s of this.all.splice(0)) {
      const w = decodeStatus(s.pid, s.status);
      if (w.kind === 'signaled') kill(s.pid, w.signal);
      closeFd(s.stdin);
      let got: ReturnType<typeof waitPid>;
      do got = waitPid(s.waiter);
      while (got?.kind === 'stopped');
      // How it died as pidfs keeps it (where the kernel tells), else as its waiter ended.
      const kept = pidfdExitStatus(s.witness);
      closeFd(s.witness);
      const same = kept !== undefined ? kept === s.status
        : got && (got.kind === 'exited' ? w.kind === 'exited' && got.code === w.code : w.kind === 'signaled' && got.signal === w.signal);
      if (!same) wrong.push(`stand-in ${s.pid} for a dead process did not end with ${describeStatus(s.status)}`);
    }
    this.byIno.clear();
    if (wrong.length) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the pidfds of dead processes: ${wrong.join('; ')}`);
  }
}

/** The one child of `pid` (nsenter's, forked into the namespace), once it exists. */
function childOf(pid: number): number {
  const until = Date.now() + 5000;
  for (;;) {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    if (kids) return Number(kids.split(' ')[0]);
    if (Date.now() > until) throw new StasisError('E_RESTORE_FAILED', `nsenter (pid ${pid}) made no stand-in for a dead process in the tree's pid namespace`);
    sleepSync(1);
  }
}
