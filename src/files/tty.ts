// Terminals, as CRIU keeps them: a TtyFileEntry per open file naming a TtyInfoEntry per tty
// (tty-info.img: kind, termios, window size, pty index, lock and packet mode, the session
// and foreground group it controls) and the bytes queued in pty pairs (tty-data.img).
// - A pty pair whose master is in the tree comes back whole: the master at its index, the
//   slaves opened on it, with their state and queued bytes (tty-state.ts, tty-restore.ts).
// - /dev/tty comes back as a file of the terminal it led to (the session's controlling one).
// - A pty slave whose master is not in the tree is the terminal of the shell that runs the
//   tree: with --shell-job it is re-attached to the terminal stasis itself runs on (CRIU's
//   --shell-job does the same); without, the dump is refused.
// - The console and virtual terminals are devices: reopened by path.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { TtyType, type TtyInfoEntry } from '../image/gen/stasis/tty_pb.js';
import { openat, closeFd, ttyGetInt, withTaskFd, setTermios, setLockedTermios, setWinsize, TIOC, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind } from './kind.js';
import { emptyFown, keepIfGone } from './reg.js';
import { ptyPair, ctty, termiosOf } from './tty-restore.js';

const S_IFMT = 0o170000n, S_IFCHR = 0o020000n;
const O_NOCTTY = 0o400, O_CLOEXEC = 0o2000000, O_ACCMODE = 3, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000;

export const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
export const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));

/** Terminals: the console, /dev/tty and ptmx (5), virtual terminals (4), pty slaves (136-143), serial (204). */
export function isTtyRdev(rdev: bigint): boolean {
  const m = major(rdev);
  return m === 4 || m === 5 || (m >= 136 && m <= 143) || m === 204;
}

/** `hungup`: a pty slave whose master was closed. */
export type TtyRole = 'master' | 'slave' | 'hungup' | 'ctty' | 'console' | 'vt' | 'serial';

export function ttyRole(rdev: bigint): TtyRole {
  const m = major(rdev), n = minor(rdev);
  if (m >= 136 && m <= 143) return 'slave';
  if (m === 5) return n === 0 ? 'ctty' : n === 2 ? 'master' : 'console';
  if (m === 4) return n < 64 ? 'vt' : 'serial';
  return 'serial';
}

export const ROLE_TYPE: Record<TtyRole, TtyType> = {
  master: TtyType.PTY, slave: TtyType.PTY, hungup: TtyType.PTY, ctty: TtyType.CTTY, console: TtyType.CONSOLE, vt: TtyType.VT, serial: TtyType.SERIAL,
};

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
    const role = ttyRole(p.stat.rdev);
    // Reopened through the root's mount namespace at restore: one on a mount of a namespace below it would come back on another mount.
    if (ctx.ghosts?.mntRoots.has(p.info.mntId)) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: it is the terminal ${p.link} on mount ${p.info.mntId} of a mount namespace below the tree's root's, which stasis cannot reopen there yet`);
    if (!ctx.ttys) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: it is the terminal ${p.link}`);
    const index = role === 'master' ? ptyIndex(p) : role === 'slave' ? minor(p.stat.rdev) + (major(p.stat.rdev) - 136) * 256 : -1;
    const ttyInfoId = ctx.ttys.file(p, id, role, index);
    // Every terminal names a REG entry of its device, as CRIU's regf_id (CRIU 4.2 refuses a TTY
    // without one as deprecated); a device reopened by its path (the console, a VT) is opened by it.
    const regfId = ctx.ids.fresh();
    const byPath = role === 'console' || role === 'vt' || role === 'serial';
    const { path, linked } = byPath ? keepIfGone(p, ctx, regfId) : { path: p.link, linked: [] };
    return [
      ...linked,
      create(FileEntrySchema, {
        type: FdTypes.REG, id: regfId,
        reg: { id: regfId, flags: p.info.flags, pos: 0n, fown: emptyFown(), name: path, mode: Number(p.stat.mode) },
      }),
      create(FileEntrySchema, { type: FdTypes.TTY, id, tty: { id, ttyInfoId, flags: p.info.flags, fown: emptyFown(), regfId } }),
    ];
  },
  open: (e, ctx) => {
    const t = e.tty;
    if (!t) throw new StasisError('E_CORRUPT', `File ${e.id} is a terminal without its entry`);
    const info = ctx.ttys.infos.get(t.ttyInfoId);
    if (!info) throw new StasisError('E_CORRUPT', `Terminal file ${e.id} names tty ${t.ttyInfoId}, which tty-info.img lacks`);
    const flags = (t.flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_NOCTTY | O_CLOEXEC;
    const role = ttyRole(BigInt(info.rdev));
    if (info.type === TtyType.CONSOLE || info.type === TtyType.VT || info.type === TtyType.SERIAL) {
      const r = t.regfId !== undefined ? ctx.files.get(t.regfId) : undefined;
      if (!r?.reg) throw new StasisError('E_CORRUPT', `Terminal file ${e.id} names no REG entry of its device`);
      const name = ctx.ghosts?.pathOf(r, ctx.files) ?? `${ctx.root ?? ''}${r.reg.name}`;
      const fd = reopen(name, flags, e.id);
      try {
        // Its settings as they were: the device's own, which every opener shares (as CRIU restores them).
        if (info.termiosLocked) setLockedTermios(fd, termiosOf(info.termiosLocked));
        if (info.termios) setTermios(fd, termiosOf(info.termios));
        const ws = info.winsize;
        if (ws) setWinsize(fd, { row: ws.wsRow, col: ws.wsCol, xpixel: ws.wsXpixel, ypixel: ws.wsYpixel });
      } catch (err) {
        closeFd(fd);
        throw new StasisError('E_RESTORE_FAILED', `Cannot give the terminal ${name} (file ${e.id}) its settings back: ${(err as Error).message}`, { cause: err });
      }
      return { status: 'done', fd };
    }
    if (info.hungUp) return { status: 'done', fd: ctx.ttys.hungUpSlave(info, flags) };
    // The shell's terminal: not in the tree, re-attached to stasis's own.
    const index = info.pty?.index ?? (role === 'ctty' ? cttyIndex(info, ctx.ttys.infos.values()) : undefined);
    const inTree = index !== undefined && ctx.ttys.hasMaster(index);
    if (!inTree) {
      if (!ctx.shellJob) throw new StasisError('E_BAD_ARGS', 'The image holds a shell job (a task on a terminal): restore it with --shell-job');
      const own = ourTerminal();
      if (!own) throw new StasisError('E_RESTORE_FAILED', 'Cannot restore a shell job: stasis is not running on a terminal');
      return { status: 'done', fd: openat(-100, own, (t.flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC) };
    }
    const pair = ptyPair(ctx.ttys, index!);
    if (role === 'master') return { status: 'done', fd: pair.takeMaster() };
    if (role === 'slave') return { status: 'done', fd: reopen(`${ctx.ttys.root}/dev/pts/${index}`, flags, e.id) };
    return { status: 'done', fd: ctty(pair, flags) };
  },
  finish: (ctx) => ctx.ttys.finish(),
} satisfies FileKind;

/**
 * The pty a /dev/tty of a CRIU image leads to: CRIU gives its CTTY entry no index, only the
 * session, whose controlling terminal is the pty slave of that session.
 */
function cttyIndex(info: TtyInfoEntry, infos: Iterable<TtyInfoEntry>): number | undefined {
  if (!info.sid) return undefined;
  for (const i of infos) if (i.type === TtyType.PTY && i.sid === info.sid && i.pty && ttyRole(BigInt(i.rdev)) === 'slave') return i.pty.index;
  return undefined;
}

function ptyIndex(p: FdProbe): number {
  const r = withTaskFd(p.pid, p.fd, (fd) => ttyGetInt(fd, TIOC.TIOCGPTN));
  if ('errno' in r) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: ${p.link} gives no pty index (errno ${r.errno})`);
  return r.value;
}

function reopen(name: string, flags: number, id: number): number {
  try {
    return openat(-100, name, flags);
  } catch (err) {
    const why = err instanceof SyscallError ? err.code : String(err);
    throw new StasisError('E_RESTORE_FAILED', `Cannot reopen the terminal ${name} (file ${id}): ${why}`, { cause: err });
  }
}
