// The socket options every kind of socket keeps in its SkOptsEntry: buffer sizes and
// send/receive timeouts, read through an fd stasis took from the task and set again on the
// socket made at restore. Kinds add their own options around these.
import {
  getsockoptInt, getsockoptTimeval, setsockoptInt, setsockoptTimeval,
  SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_RCVTIMEO, SO_SNDBUF, SO_SNDBUFFORCE, SO_SNDTIMEO, SyscallError,
} from '../sys/index.js';

/** Buffer sizes (as getsockopt reports them: doubled) and timeouts of a socket. */
export function bufsAndTimeouts(fd: number) {
  const [sndSec, sndUsec] = getsockoptTimeval(fd, SO_SNDTIMEO);
  const [rcvSec, rcvUsec] = getsockoptTimeval(fd, SO_RCVTIMEO);
  return {
    soSndbuf: getsockoptInt(fd, SOL_SOCKET, SO_SNDBUF), soRcvbuf: getsockoptInt(fd, SOL_SOCKET, SO_RCVBUF),
    soSndTmoSec: sndSec, soSndTmoUsec: sndUsec, soRcvTmoSec: rcvSec, soRcvTmoUsec: rcvUsec,
  };
}

/** The timeouts of an image's options, where they were set. */
export function setTimeouts(fd: number, o: { soSndTmoSec: bigint; soSndTmoUsec: bigint; soRcvTmoSec: bigint; soRcvTmoUsec: bigint }): void {
  if (o.soSndTmoSec || o.soSndTmoUsec) setsockoptTimeval(fd, SO_SNDTIMEO, o.soSndTmoSec, o.soSndTmoUsec);
  if (o.soRcvTmoSec || o.soRcvTmoUsec) setsockoptTimeval(fd, SO_RCVTIMEO, o.soRcvTmoSec, o.soRcvTmoUsec);
}

/**
 * Sets a buffer size (SO_SNDBUF or SO_RCVBUF, `value` as setsockopt takes it: half what
 * getsockopt reports). The FORCE variant passes net.core.wmem_max / rmem_max; without
 * CAP_NET_ADMIN the plain option is used, capped by the kernel at that maximum.
 */
export function setBufSize(fd: number, opt: typeof SO_SNDBUF | typeof SO_RCVBUF, value: number): void {
  try {
    setsockoptInt(fd, SOL_SOCKET, opt === SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, value);
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'EPERM')) throw err;
    setsockoptInt(fd, SOL_SOCKET, opt, value);
  }
}
