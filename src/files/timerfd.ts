// timerfds: clock, interval and the time left (fdinfo prints it relative, absolute timers
// included), and the expirations not yet read, put back with TFD_IOC_SET_TICKS. fdinfo shows
// an overdue periodic timer as disarmed with one expiration: stasis first calls
// timerfd_gettime on the file (taken with pidfd_getfd), which counts the missed expirations
// and arms the next one, as the task's own next read or gettime would. An absolute
// timer is re-armed at now + time left on its clock, as CRIU does. CRIU's images keep an
// overdue periodic timer disarmed: it is armed one interval ahead.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import fs from 'node:fs';
import { timerfd as newTimerfd, clockGettime, timerfdGettime, pidfdOpen, pidfdGetfd, closeFd, SyscallError } from '../sys/index.js';
import { parseFdinfo } from '../proc/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, TFD_TIMER_ABSTIME = 1;
const NS = 1_000_000_000;

export const timerfd = {
  name: 'timerfd',
  type: FdTypes.TIMERFD,
  detect: (p) => p.link === 'anon_inode:[timerfd]',
  dump: (p, _ctx, id) => {
    bringUpToDate(p.pid, p.fd);
    const t = parseFdinfo(fs.readFileSync(`/proc/${p.pid}/fdinfo/${p.fd}`, 'utf8')).timerfd;
    if (!t) throw new StasisError('E_DUMP_FAILED', `Cannot read timerfd ${p.fd} of pid ${p.pid} from fdinfo`);
    return create(FileEntrySchema, {
      type: FdTypes.TIMERFD,
      id,
      tfd: {
        id, flags: p.info.flags, fown: emptyFown(), clockid: t.clockid, ticks: t.ticks, settimeFlags: t.settimeFlags,
        vsec: t.value.sec, vnsec: BigInt(t.value.nsec), isec: t.interval.sec, insec: BigInt(t.interval.nsec),
      },
    });
  },
  open: (e) => {
    const t = e.tfd;
    if (!t) throw new StasisError('E_CORRUPT', `File ${e.id} is a timerfd without its entry`);
    let value = { sec: t.vsec, nsec: Number(t.vnsec) };
    // CRIU dumps an overdue periodic timer as fdinfo shows it: disarmed, with expirations
    // to read. It still runs: its next expiration is due within one interval.
    const periodic = t.isec !== 0n || t.insec !== 0n;
    if (value.sec === 0n && value.nsec === 0 && periodic && t.ticks > 0n) value = { sec: t.isec, nsec: Number(t.insec) };
    const armed = value.sec !== 0n || value.nsec !== 0;
    if (armed && t.settimeFlags & TFD_TIMER_ABSTIME) {
      const now = clockGettime(t.clockid);
      const nsec = now.nsec + value.nsec;
      value = { sec: now.sec + value.sec + BigInt(Math.floor(nsec / NS)), nsec: nsec % NS };
    }
    try {
      const fd = newTimerfd(t.clockid, (t.flags & O_NONBLOCK) | O_CLOEXEC, armed ? t.settimeFlags : 0,
        { interval: { sec: t.isec, nsec: Number(t.insec) }, value }, t.ticks);
      return { status: 'done', fd };
    } catch (err) {
      const why = err instanceof SyscallError ? `${err.syscall} failed with ${err.code}` : String(err);
      throw new StasisError('E_RESTORE_FAILED', `Cannot re-create timerfd ${e.id} (clock ${t.clockid}): ${why}`, { cause: err });
    }
  },
} satisfies FileKind;

function bringUpToDate(pid: number, fd: number): void {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      timerfdGettime(mine);
    } finally {
      closeFd(mine);
    }
  } finally {
    closeFd(pidfd);
  }
}
