// Installing file descriptors that stasis opened into a task: the task pulls each one in
// with pidfd_getfd through a pidfd of stasis, then moves it to its number. The pidfd sits on
// a spare "trampoline" number that no wanted fd uses, so no install clobbers another.
import { failedWith, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { COURIER_FD, type FdCourier } from './fd-courier.js';

const F_SETFD = 2, O_CLOEXEC = 0o2000000;

export interface FdInstall {
  /** The number the fd must have in the task. */
  fd: number;
  /** The fd in stasis holding the same open file. */
  toolFd: number;
  cloexec: boolean;
}

function check(inj: Injector, what: string, r: bigint): number {
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot ${what} in pid ${inj.pid}: ${failedWith(r)}`);
  return Number(r);
}

/**
 * A new pidfd of stasis in the task: pidfd_open, or, in a pid namespace where stasis has no
 * pid, a dup of the one it inherited (`inherited`, see NewTask.stasisPidfd).
 */
export function pidfdOfStasis(inj: Injector, inherited?: number): bigint {
  return inherited === undefined ? inj.call('pidfd_open', process.pid, 0) : inj.call('dup', inherited);
}

/**
 * Closes every fd the task has (the inherited pidfd of stasis last), then installs `fds`.
 * With a `courier` (fd-courier.ts), the files come through its end (COURIER_FD) instead, closed last too.
 */
export function installFds(inj: Injector, fds: FdInstall[], inherited?: number, courier?: FdCourier): void {
  if (courier) return installByCourier(inj, fds, inherited, courier);
  if (inherited === undefined) check(inj, 'close inherited fds', inj.call('close_range', 0, 0xffffffff, 0));
  else {
    if (inherited > 0) check(inj, 'close inherited fds', inj.call('close_range', 0, inherited - 1, 0));
    check(inj, 'close inherited fds', inj.call('close_range', inherited + 1, 0xffffffff, 0));
  }
  if (fds.length === 0) {
    if (inherited !== undefined) inj.call('close', inherited);
    return;
  }
  const wanted = new Set(fds.map((f) => f.fd));
  let trampoline = 0;
  while (wanted.has(trampoline)) trampoline++;
  const first = check(inj, 'open a pidfd of stasis', pidfdOfStasis(inj, inherited));
  if (inherited !== undefined && inherited !== trampoline) inj.call('close', inherited);
  if (first !== trampoline) {
    check(inj, 'move the pidfd', inj.call('dup3', first, trampoline, O_CLOEXEC));
    inj.call('close', first);
  }
  try {
    // pidfd_getfd always sets close-on-exec.
    for (const f of fds) place(inj, f, check(inj, `take fd ${f.toolFd} of stasis`, inj.call('pidfd_getfd', trampoline, f.toolFd, 0)));
  } finally {
    inj.call('close', trampoline);
  }
}

/** The fd the task was given (`got`, close-on-exec) made its `f.fd`, with its close-on-exec flag. */
function place(inj: Injector, f: FdInstall, got: number): void {
  if (got === f.fd) {
    if (!f.cloexec) check(inj, `clear FD_CLOEXEC on fd ${f.fd}`, inj.call('fcntl', f.fd, F_SETFD, 0));
  } else {
    check(inj, `move fd ${got} to ${f.fd}`, inj.call('dup3', got, f.fd, f.cloexec ? O_CLOEXEC : 0));
    inj.call('close', got);
  }
}

/** installFds() through the courier: its end moved to a number no wanted fd uses, the inherited pidfd closed. */
function installByCourier(inj: Injector, fds: FdInstall[], inherited: number | undefined, courier: FdCourier): void {
  const keep = [COURIER_FD, ...(inherited !== undefined ? [inherited] : [])].sort((a, b) => a - b);
  let from = 0;
  for (const k of keep) {
    if (k > from) check(inj, 'close inherited fds', inj.call('close_range', from, k - 1, 0));
    from = k + 1;
  }
  check(inj, 'close inherited fds', inj.call('close_range', from, 0xffffffff, 0));
  if (inherited !== undefined) inj.call('close', inherited);
  const wanted = new Set(fds.map((f) => f.fd));
  let trampoline = 0;
  while (wanted.has(trampoline)) trampoline++;
  if (trampoline !== COURIER_FD) {
    check(inj, 'move the courier socket', inj.call('dup3', COURIER_FD, trampoline, O_CLOEXEC));
    inj.call('close', COURIER_FD);
  }
  try {
    // Received with MSG_CMSG_CLOEXEC.
    for (const f of fds) place(inj, f, check(inj, `receive fd ${f.toolFd} of stasis`, courier.take(inj, f.toolFd, trampoline)));
  } finally {
    inj.call('close', trampoline);
  }
}
