// Files handed to the tasks of a user namespace below stasis's over a Unix socket. A task
// takes stasis's files with pidfd_getfd, which needs ptrace access to stasis; a task of a user
// namespace that stasis's is the parent of has no CAP_SYS_PTRACE there (cap_ptrace_access_check),
// so where the tree's pid namespace makes its tasks be born in that user namespace, stasis
// sends each file (SCM_RIGHTS) on its end of a socket pair, and the task receives it on the
// other end, which it inherited from the stub at COURIER_FD.
import { Injector, sendMessage, socketpair, closeFd, SOCK_SEQPACKET, SOCK_CLOEXEC } from '../sys/index.js';

/** Where the tasks hold their end until their fds are installed (beside the pidfd of stasis at 1000). */
export const COURIER_FD = 1001;

const MSG_CMSG_CLOEXEC = 0x40000000, SOL_SOCKET = 1, SCM_RIGHTS = 1;

export class FdCourier {
  private constructor(
    private readonly mine: number,
    /** stasis's fd of the tasks' end, until the stub has taken it. */
    readonly theirs: number,
  ) {}

  static create(): FdCourier {
    const [a, b] = socketpair(SOCK_SEQPACKET | SOCK_CLOEXEC);
    return new FdCourier(a, b);
  }

  /** The task behind `inj` receives stasis's fd `toolFd` on its end at `at`; its new fd (close-on-exec), or -errno. */
  take(inj: Injector, toolFd: number, at = COURIER_FD): bigint {
    sendMessage(this.mine, Buffer.from([0]), [toolFd]);
    const data = inj.put(Buffer.alloc(16));
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(data, 0);
    iov.writeBigUInt64LE(1n, 8);
    const control = inj.put(Buffer.alloc(32));
    const msg = Buffer.alloc(56);
    msg.writeBigUInt64LE(inj.put(iov), 16);
    msg.writeBigUInt64LE(1n, 24);
    msg.writeBigUInt64LE(control, 32);
    msg.writeBigUInt64LE(32n, 40);
    const r = inj.call('recvmsg', at, inj.put(msg), MSG_CMSG_CLOEXEC);
    if (r < 0n) return r;
    const c = inj.mem.readExact(control, 32);
    if (c.readInt32LE(8) !== SOL_SOCKET || c.readInt32LE(12) !== SCM_RIGHTS) return -71n; // EPROTO: no fd came
    return BigInt(c.readInt32LE(16));
  }

  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.mine);
    closeFd(this.theirs);
  }
}
