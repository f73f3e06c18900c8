// Terminals. A shell job's terminal belongs to the shell that ran it, not to the job: with
// --shell-job the fds on it are dumped as a TTY entry, and restore points them at the
// terminal stasis itself runs on (CRIU's --shell-job does the same).
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { TtyInfoEntrySchema, TtyType, type TtyInfoEntry } from '../image/gen/stasis/tty_pb.js';
import { openat } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const S_IFMT = 0o170000n, S_IFCHR = 0o020000n;
const O_NOCTTY = 0o400, O_CLOEXEC = 0o2000000, O_ACCMODE = 3;

const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));

/** Terminals: the console and virtual terminals (4, 5), pty slaves (136-143), serial (204). */
export function isTtyRdev(rdev: bigint): boolean {
  const m = major(rdev);
  return m === 4 || m === 5 || (m >= 136 && m <= 143) || m === 204;
}

function ttyType(rdev: bigint): TtyType {
  const m = major(rdev);
  if (m >= 136 && m <= 143) return TtyType.PTY;
  if (m === 5) return minor(rdev) === 0 ? TtyType.CTTY : TtyType.CONSOLE;
  if (m === 4) return TtyType.VT;
  return TtyType.SERIAL;
}

/** The terminal stasis runs on: the first of its standard fds that is one. */
export function ourTerminal(): string | null {
  for (const fd of [0, 1, 2]) {
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if ((st.mode & S_IFMT) === S_IFCHR && isTtyRdev(st.rdev)) return `/proc/self/fd/${fd}`;
    } catch {
      /* closed */
    }
  }
  return null;
}

export const tty = {
  name: 'terminal',
  type: FdTypes.TTY,
  detect: (p) => p.link.startsWith('/') && (p.stat.mode & S_IFMT) === S_IFCHR && isTtyRdev(p.stat.rdev),
  dump: (p, ctx, id) => {
    if (!ctx.shellJob) {
      throw new StasisError('E_UNSUPPORTED_FD',
        `Cannot dump fd ${p.fd} of pid ${p.pid}: it is the terminal ${p.link}; dump with --shell-job to re-attach it at restore`);
    }
    return create(FileEntrySchema, {
      type: FdTypes.TTY,
      id,
      tty: { id, ttyInfoId: id, flags: p.info.flags, fown: emptyFown() },
    });
  },
  open: (e, ctx) => {
    if (!e.tty) throw new StasisError('E_CORRUPT', `File ${e.id} is a terminal without its entry`);
    if (!ctx.shellJob) {
      throw new StasisError('E_BAD_ARGS', 'The image holds a shell job (a task on a terminal): restore it with --shell-job');
    }
    const own = ourTerminal();
    if (!own) throw new StasisError('E_RESTORE_FAILED', 'Cannot restore a shell job: stasis is not running on a terminal');
    return { status: 'done', fd: openat(-100, own, (e.tty.flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC) };
  },
} satisfies FileKind;

/** The tty-info entry CRIU writes beside each terminal file. */
export function ttyInfo(id: number, rdev: bigint, sid: number, pgrp: number): TtyInfoEntry {
  const type = ttyType(rdev);
  return create(TtyInfoEntrySchema, {
    id, type, locked: false, exclusive: false, packetMode: false, sid, pgrp, rdev: Number(rdev & 0xffffffffn),
    ...(type === TtyType.PTY ? { pty: { index: minor(rdev) + (major(rdev) - 136) * 256 } } : {}),
  });
}
