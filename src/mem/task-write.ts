// A frozen task's pages written into a pages file by the task itself: an injected pwritev
// of its own memory into the pages file, whose fd stasis passes it (SCM_RIGHTS over a
// socketpair made in the task). One copy, as the splice path (page-splice.ts) makes, but one
// injected call per CALL_BYTES instead of one per pipe (1 MiB here: pipe-max-size without
// CAP_SYS_RESOURCE): 1 GiB took 1025 calls, each a ptrace round trip of the task that the
// other core's summing thread and the machine's other load delay (issue 15: ~0.5 ms a call,
// as much as the copy). stasis hands the landed ranges to the summing thread, which reads them back,
// while the task writes the next.
//
// The task's memory cgroup is charged for the page cache it writes (the splice path charges
// stasis's), and its RLIMIT_FSIZE applies (a write past it would leave SIGXFSZ pending):
// canTaskWrite() takes this path only for a task in stasis's own memory cgroup whose limit
// allows the file. The copy's CPU time is the task's (its stime), in that same cgroup.
// stasis killed meanwhile leaves the task running on (the injection's own guarantee) but
// holding the pages file open, close-on-exec, until it exits, as the splice path leaves it
// its two pipes: the file's space stays in use that long.
import fs from 'node:fs';
import { Injector, type InjectorOptions, pidfdOpen, pidfdGetfd, closeFd, sendMessage, getRlimit, SOCK_DGRAM, SOCK_CLOEXEC } from '../sys/index.js';
import { parseCgroupFile } from '../proc/index.js';
import { StasisError } from '../errors.js';

/** A segment of the task's memory still to move. */
export interface Segment { addr: bigint; len: number }

/** The `count` segments of an iovec array (the task's addresses). */
export function iovSegments(iov: Buffer, count: number): Segment[] {
  const segs: Segment[] = [];
  for (let i = 0; i < count; i++) segs.push({ addr: iov.readBigUInt64LE(i * 16), len: Number(iov.readBigUInt64LE(i * 16 + 8)) });
  return segs;
}

/** Moves past `n` bytes moved, from segment `first` on; returns the first segment with bytes left. */
export function consumeSegments(segs: Segment[], first: number, n: number): number {
  for (let left = n; left > 0; ) {
    const g = segs[first]!;
    const take = Math.min(left, g.len);
    g.addr += BigInt(take);
    g.len -= take;
    left -= take;
    if (g.len === 0) first++;
  }
  return first;
}

const AF_UNIX = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const RLIMIT_FSIZE = 1;
const RLIM_INFINITY = 0xffffffffffffffffn;
/** The most bytes one injected pwritev is given: the ranges summed behind it are this big. */
const CALL_BYTES = 16 << 20;
const IOV_MAX = 1024;

/** Moves a frozen task's pages into a file at an offset: the task's own pwritev (here) or vmsplice (page-splice.ts). */
export interface PageMover {
  move(iov: Buffer, count: number, out: number, pos: bigint, moved: (n: number) => void, between: (n: number) => void): number;
  close(): void;
}

/** Whether the pages of `pid` may be written by the task itself: `bytes` of them, into a file. */
export function canTaskWrite(pid: number, bytes: number): boolean {
  try {
    const lim = getRlimit(pid, RLIMIT_FSIZE).cur;
    if (lim !== RLIM_INFINITY && lim < BigInt(bytes)) return false;
    return memoryCgroup(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')) === memoryCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8'));
  } catch {
    return false;
  }
}

/** The cgroup that page cache a task writes is charged to: the v2 one, or v1's memory hierarchy's. */
function memoryCgroup(text: string): string | undefined {
  const cgs = parseCgroupFile(text);
  return (cgs.find((c) => c.name.split(',').includes('memory')) ?? cgs.find((c) => c.name === ''))?.path;
}

export class TaskWriter implements PageMover {
  private readonly inj: Injector;
  /** The pages file's fd in the task (-1 until it has it). */
  private taskFd = -1;

  constructor(readonly pid: number, inject: InjectorOptions, out: number) {
    this.inj = new Injector(pid, inject);
    try {
      this.taskFd = this.passFd(out);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** `fd` of stasis's into the task: through a socketpair made in the task, closed again. Returns its number there. */
  private passFd(fd: number): number {
    const inj = this.inj;
    const pair = inj.put(Buffer.alloc(8));
    inj.must('socketpair', AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair);
    const ends = inj.mem.readExact(pair, 8);
    const sv = [ends.readInt32LE(0), ends.readInt32LE(4)];
    try {
      const pidfd = pidfdOpen(this.pid);
      let mine = -1;
      try {
        mine = pidfdGetfd(pidfd, sv[0]!);
        sendMessage(mine, Buffer.from([0]), [fd]);
      } finally {
        if (mine >= 0) closeFd(mine);
        closeFd(pidfd);
      }
      // struct msghdr (56 bytes), its iovec, one byte of data, a control buffer for one fd.
      const at = inj.put(Buffer.alloc(56 + 16 + 8 + 24));
      const msg = Buffer.alloc(56 + 16 + 8 + 24);
      msg.writeBigUInt64LE(at + 56n, 16); // msg_iov
      msg.writeBigUInt64LE(1n, 24); // msg_iovlen
      msg.writeBigUInt64LE(at + 80n, 32); // msg_control
      msg.writeBigUInt64LE(24n, 40); // msg_controllen
      msg.writeBigUInt64LE(at + 72n, 56); // iov_base
      msg.writeBigUInt64LE(1n, 64); // iov_len
      inj.mem.write(at, msg);
      inj.must('recvmsg', sv[1]!, at, MSG_CMSG_CLOEXEC);
      const got = inj.mem.readExact(at, msg.length);
      // One SCM_RIGHTS message of one fd (cmsg_len 20, SOL_SOCKET, SCM_RIGHTS); anything else (an LSM said no, the fd table is full: MSG_CTRUNC) fails.
      if (got.readBigUInt64LE(40) < 20n || got.readBigUInt64LE(80) !== 20n || got.readInt32LE(88) !== 1 || got.readInt32LE(92) !== 1) {
        throw new StasisError('E_DUMP_FAILED', `pid ${this.pid} did not receive the pages file's fd`);
      }
      return got.readInt32LE(96);
    } finally {
      for (const s of sv) this.inj.call('close', s);
    }
  }

  /**
   * Moves the `count` segments of the iovec array `iov` (the task's own addresses) into `out`
   * from `pos` on, by injected pwritev calls of up to CALL_BYTES; `moved` is told the bytes
   * of each call while the task runs the next (it maps and hands them to be summed), `between`
   * the bytes landed, between two calls (where it may throw: a cancelled dump). Returns the
   * bytes moved: fewer than asked where a segment cannot be read (a PROT_NONE page ends the
   * write there): the rest is the caller's.
   */
  move(iov: Buffer, count: number, _out: number, pos: bigint, moved: (n: number) => void, between: (n: number) => void): number {
    const segs = iovSegments(iov, count);
    let sent = 0, first = 0, pending = 0;
    const piece = Buffer.alloc(Math.min(count, IOV_MAX) * 16);
    const tell = () => {
      if (pending === 0) return false;
      const n = pending;
      pending = 0;
      moved(n);
      return true;
    };
    while (first < segs.length) {
      // The segments not written yet, from the first with bytes left, up to CALL_BYTES.
      let n = 0, bytes = 0;
      for (let i = first; i < segs.length && n < IOV_MAX && bytes < CALL_BYTES; i++, n++) {
        const len = Math.min(segs[i]!.len, CALL_BYTES - bytes);
        piece.writeBigUInt64LE(segs[i]!.addr, n * 16);
        piece.writeBigUInt64LE(BigInt(len), n * 16 + 8);
        bytes += len;
      }
      this.inj.resetScratch();
      const at = this.inj.put(piece.subarray(0, n * 16));
      const r = this.inj.callPumping('pwritev', [this.taskFd, at, n, pos + BigInt(sent)], tell);
      tell();
      const got = r < 0n ? 0 : Number(r); // (EFAULT at the first byte: nothing written)
      between(got);
      if (got === 0) break;
      pending = got;
      sent += got;
      first = consumeSegments(segs, first, got);
      if (got < bytes) break;
    }
    tell();
    return sent;
  }

  /** Closes the pages file in the task; the task's registers and mask are given back. */
  close(): void {
    try {
      if (this.taskFd >= 0) this.inj.call('close', this.taskFd);
      this.taskFd = -1;
    } finally {
      this.inj.end();
    }
  }
}
