// A frozen task's pages moved into a pages file with one copy, as CRIU's parasite moves them:
// the task itself (an injected vmsplice) puts references to its pages into a pipe of its own,
// whose read end stasis holds too (pidfd_getfd), and stasis splices them into the file, the
// kernel's only copy. Reading them with process_vm_readv into a buffer and write()-ing that
// copies every byte twice: for 1 GiB, about twice the CPU (KERNEL-NOTES: 6 GB/s per copy).
// The task's pipes are made and closed by injected calls (pipe2, close), before its registers
// are given back. A pipe holds 256 pages (1 MiB) at most here (pipe-max-size, no
// CAP_SYS_RESOURCE) and a vmsplice returns once its pipe is full: one injected call per MiB,
// each hidden behind the splice of the MiB before (two pipes in turn, Injector.callPumping).
import fs from 'node:fs';
import { Injector, type InjectorOptions, pidfdOpen, pidfdGetfd, fcntl, F_SETPIPE_SZ, F_GETPIPE_SZ, spliceToFile, closeFd } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { consumeSegments, iovSegments, type PageMover } from './task-write.js';

const O_CLOEXEC = 0o2000000;
const WANT_PIPE = 1 << 20;

export class TaskSplicer implements PageMover {
  private readonly inj: Injector;
  /** The task's two pipes (read, write), and stasis's copies of their read ends. */
  private readonly taskFds: number[] = [];
  private readonly readEnds: number[] = [];
  /** A pipe's size: the most one vmsplice moves. */
  readonly capacity: number;

  constructor(readonly pid: number, inject: InjectorOptions) {
    this.inj = new Injector(pid, inject);
    try {
      const pidfd = pidfdOpen(pid);
      try {
        for (let i = 0; i < 2; i++) {
          const at = this.inj.put(Buffer.alloc(8));
          this.inj.must('pipe2', at, O_CLOEXEC);
          const b = this.inj.mem.readExact(at, 8);
          this.taskFds.push(b.readInt32LE(0), b.readInt32LE(4));
          this.readEnds.push(pidfdGetfd(pidfd, b.readInt32LE(0)));
        }
      } finally {
        closeFd(pidfd);
      }
      let cap = Infinity;
      for (const fd of this.readEnds) {
        try {
          fcntl(fd, F_SETPIPE_SZ, WANT_PIPE);
        } catch {
          /* the default size, then */
        }
        cap = Math.min(cap, fcntl(fd, F_GETPIPE_SZ));
      }
      this.capacity = cap;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /**
   * Moves the `count` segments of the iovec array `iov` (the task's own addresses) into `out`
   * from `pos` on. Each injected vmsplice fills one of the task's pipes (up to `capacity`)
   * while stasis splices the other's pages, put there by the call before, into the file: the
   * copy overlaps the ptrace round trip. `moved` is told the bytes as they land, in order;
   * `between`, the bytes landed since it was last called, between two injected calls (where
   * it may throw: a cancelled dump). Returns the bytes moved: fewer than asked where a segment cannot be read (PROT_NONE stops
   * vmsplice): the rest is the caller's.
   */
  move(iov: Buffer, count: number, out: number, pos: bigint, moved: (n: number) => void, between: (n: number) => void): number {
    const segs = iovSegments(iov, count);
    const total = segs.reduce((n, g) => n + g.len, 0);
    // What each pipe holds for the file, and where: drained in the order the calls filled them.
    const held = [{ at: pos, left: 0 }, { at: pos, left: 0 }];
    let landed = 0;
    const drain = (k: number): boolean => {
      const h = held[k]!;
      if (h.left === 0) return false;
      // (The pipe holds all it will: the call that filled it has ended.)
      const m = spliceToFile(this.readEnds[k]!, out, h.at, h.left);
      if (m === 0) return false;
      h.at += BigInt(m);
      h.left -= m;
      landed += m;
      moved(m);
      return true;
    };
    const drainAll = (k: number) => {
      while (held[k]!.left > 0) {
        if (!drain(k)) {
          throw new StasisError('E_DUMP_FAILED', `The pipe of pid ${this.pid} holds ${held[k]!.left} bytes fewer than its vmsplice put there`);
        }
      }
    };
    let sent = 0, first = 0, k = 0;
    const piece = Buffer.alloc(Math.min(count, 1024) * 16);
    while (sent < total) {
      // The segments not sent yet, from the first with bytes left.
      let n = 0;
      for (let i = first; i < segs.length && n < piece.length / 16; i++, n++) {
        piece.writeBigUInt64LE(segs[i]!.addr, n * 16);
        piece.writeBigUInt64LE(BigInt(segs[i]!.len), n * 16 + 8);
      }
      this.inj.resetScratch();
      const at = this.inj.put(piece.subarray(0, n * 16));
      const other = 1 - k;
      const r = this.inj.callPumping('vmsplice', [this.taskFds[2 * k + 1]!, at, n, 0], () => drain(other));
      drainAll(other);
      between(landed);
      landed = 0;
      const got = r < 0n ? 0 : Number(r); // (EFAULT at the first page: nothing moved)
      if (got === 0) break;
      held[k] = { at: pos + BigInt(sent), left: got };
      sent += got;
      first = consumeSegments(segs, first, got);
      k = other;
    }
    drainAll(1 - k);
    between(landed);
    return sent;
  }

  /** Closes the pipes in the task and here; the task's registers and mask are given back. */
  close(): void {
    for (const fd of this.readEnds) closeFd(fd);
    try {
      for (const fd of this.taskFds) this.inj.call('close', fd);
    } finally {
      this.inj.end();
    }
  }
}

/** Whether `fd` is a regular file, where pages can be spliced at an offset. */
export function isRegularFile(fd: number): boolean {
  try {
    return fs.fstatSync(fd).isFile();
  } catch {
    return false;
  }
}
