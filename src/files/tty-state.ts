// The terminals of one dump: each tty fd names a TtyInfoEntry per tty (a pty's master and
// slave are two ttys with one index); once every task's fds are seen the infos are filled
// from the ttys themselves, through stasis's own files on them, and the bytes queued in each
// pty pair are taken (pty-queue.ts). A slave whose master is not in the tree is the shell
// job's terminal (--shell-job, else refused); a tty that controls a session must have that
// session's leader in the tree, to take it back as its controlling terminal.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { TtyInfoEntrySchema, TtyDataEntrySchema, TtyType, type TtyInfoEntry, type TtyDataEntry } from '../image/gen/stasis/tty_pb.js';
import { packTermiosCc } from '../image/index.js';
import {
  closeFd, getLockedTermios, getTermios, getWinsize, openPtyPeer, pidfdGetfd, pidfdOpen, ttyGetInt, ttySetInt, withTaskFd, TIOC,
  type Termios,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe } from './kind.js';
import { ROLE_TYPE, type TtyRole } from './tty.js';
import { takePtyQueues, writePtyQueues, type PtyQueues } from './pty-queue.js';

const O_RDWR = 2, O_NOCTTY = 0o400, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const PTMX_RDEV = (5 << 8) | 2, CTTY_RDEV = 5 << 8;

interface TtyFile {
  pid: number;
  fd: number;
  /** The file's id. */
  id: number;
  role: TtyRole;
  /** A pty's index; for /dev/tty the session of the terminal it leads to. */
  index: number;
  link: string;
  rdev: number;
}

export interface TtyTask {
  pid: number;
  sid: number;
  pgid: number;
}

/** One info per tty: a pty side by its index, /dev/tty by its session, a device by its rdev. */
const keyOf = (f: TtyFile) => (f.role === 'console' || f.role === 'vt' || f.role === 'serial' ? `${f.role} ${f.rdev}` : `${f.role} ${f.index}`);

const termiosEntry = (t: Termios) => ({
  cIflag: t.iflag, cOflag: t.oflag, cCflag: t.cflag, cLflag: t.lflag, cLine: t.line, cIspeed: t.ispeed, cOspeed: t.ospeed, cCc: packTermiosCc(t.cc),
});

/** CRIU's pty index limit, and its info ids of the console, a VT and /dev/tty (tty.c: MAX_PTY_INDEX, CONSOLE_INDEX, VT_INDEX, CTTY_INDEX, doubled). */
const MAX_PTY_INDEX = 1000, CONSOLE_ID = 2004, VT_ID = 2008, CTTY_ID = 2012, OTHER_IDS = 2014;

export class TtySink {
  readonly files: TtyFile[] = [];
  readonly infos: TtyInfoEntry[] = [];
  readonly data: TtyDataEntry[] = [];
  private readonly infoIds = new Map<string, number>();
  /** Stasis's files on each pair, and the bytes taken from it: put back unless the tree is gone. */
  private readonly pairs: { master: number; slave: number; st: Termios; q: PtyQueues; what: string }[] = [];

  /** The ids of the infos that are not a pty pair's, from CRIU's (below). */
  private nextOther = OTHER_IDS;

  /**
   * The id of a tty's info, as CRIU numbers them (tty.c's tty_gen_id): a pty's slave 2 * index,
   * its master the next (CRIU's restore pairs them by these ids: a slave whose id + 1 is no
   * master's is refused); the console, the first VT and /dev/tty CRIU's own ids for them; any
   * other (a further VT, a serial line, a hung-up slave) an even id above those, below CRIU's
   * limit of 2048 for a tty with termios.
   */
  private infoId(role: TtyRole, index: number): number {
    if ((role === 'master' || role === 'slave') && index >= 0 && index <= MAX_PTY_INDEX) return 2 * index + (role === 'master' ? 1 : 0);
    const fixed = role === 'console' ? CONSOLE_ID : role === 'vt' ? VT_ID : role === 'ctty' ? CTTY_ID : undefined;
    if (fixed !== undefined && ![...this.infoIds.values()].includes(fixed)) return fixed;
    if (this.nextOther > 2046) throw new StasisError('E_UNSUPPORTED', 'The tree holds more terminals than CRIU\'s images can number');
    return (this.nextOther += 2) - 2;
  }

  /** Records tty fd `p` (file `id`); returns the id of the tty's info entry. */
  file(p: FdProbe, id: number, role: TtyRole, index: number): number {
    if (role === 'ctty') {
      // /dev/tty leads to the terminal that was the opener's: TIOCGDEV tells which.
      const dev = withTaskFd(p.pid, p.fd, (fd) => ttyGetInt(fd, TIOC.TIOCGDEV));
      if ('errno' in dev) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: /dev/tty does not tell its terminal (errno ${dev.errno})`);
      const major = (dev.value >> 8) & 0xfff, minor = (dev.value & 0xff) | ((dev.value >> 12) & ~0xff); // new_encode_dev
      index = major >= 136 && major <= 143 ? minor + (major - 136) * 256 : -1 - dev.value;
    }
    // A slave whose master was closed: hung up, its node gone from /dev/pts.
    if (role === 'slave' && p.link.endsWith(' (deleted)')) role = 'hungup';
    const f = { pid: p.pid, fd: p.fd, id, role, index, link: p.link, rdev: Number(p.stat.rdev & 0xffffffffn) };
    let info = this.infoIds.get(keyOf(f));
    if (info === undefined) this.infoIds.set(keyOf(f), (info = this.infoId(role, index)));
    this.files.push(f);
    return info;
  }

  /** Once every task's fds are recorded: checks the pairs, fills the infos, takes the queued bytes. */
  finish(tasks: TtyTask[], shellJob: boolean, toImage: (hostPid: number) => number = (p) => p): void {
    const masters = new Map<number, TtyFile>();
    for (const f of this.files) if (f.role === 'master' && !masters.has(f.index)) masters.set(f.index, f);
    for (const [index, m] of masters) {
      const slaveInfo = this.infoIds.get(`slave ${index}`) ?? this.infoId('slave', index);
      this.infoIds.set(`slave ${index}`, slaveInfo);
      this.pair(m, index, this.infoIds.get(`master ${index}`)!, slaveInfo, tasks);
    }
    // Sessions and groups as the tree's pid namespace numbers them.
    for (const i of this.infos) {
      if (i.sid) i.sid = toImage(i.sid);
      if (i.pgrp) i.pgrp = toImage(i.pgrp);
    }
    const done = new Set<number>();
    for (const f of this.files) {
      const id = this.infoIds.get(keyOf(f))!;
      if (done.has(id) || f.role === 'master') continue;
      done.add(id);
      if (f.role === 'slave' && masters.has(f.index)) continue; // filled with its pair
      const base = { id, type: ROLE_TYPE[f.role], locked: false, exclusive: false, packetMode: false, sid: 0, pgrp: 0, rdev: f.rdev };
      if (f.role === 'ctty') {
        const inTree = masters.has(f.index);
        if (!inTree && !shellJob) {
          throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${f.fd} of pid ${f.pid}: it is /dev/tty of a terminal whose master is not in the tree; dump with --shell-job to re-attach it at restore`);
        }
        // As CRIU: no pty index (CRIU 4.2 refuses a CTTY with one), the session whose terminal it
        // is, and its terminal's settings (CRIU 4.2 refuses a CTTY without them as corrupt).
        const slave = inTree ? this.infos.find((i) => i.id === this.infoIds.get(`slave ${f.index}`)) : undefined;
        const { sid = 0, pgrp = 0, termios, termiosLocked, winsize } = slave ?? {};
        this.infos.push(create(TtyInfoEntrySchema, { ...base, rdev: CTTY_RDEV, sid, pgrp, ...(termios && termiosLocked && winsize ? { termios, termiosLocked, winsize } : {}) }));
      } else if (f.role === 'hungup') {
        // Made again as a pair whose master is closed once its slaves are open.
        this.infos.push(create(TtyInfoEntrySchema, { ...base, pty: { index: f.index }, hungUp: true }));
      } else if (f.role === 'slave') {
        if (!shellJob) {
          throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${f.fd} of pid ${f.pid}: it is the terminal ${f.link}, whose master is not in the tree; dump with --shell-job to re-attach it at restore`);
        }
        this.infos.push(create(TtyInfoEntrySchema, { ...base, pty: { index: f.index } }));
      } else {
        // The console or a VT: a device, reopened by its path; not the tree's controlling terminal.
        const sid = withTaskFd(f.pid, f.fd, (fd) => ttyGetInt(fd, TIOC.TIOCGSID));
        if ('value' in sid && tasks.some((t) => t.sid === sid.value) && !shellJob) {
          throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${f.fd} of pid ${f.pid}: the terminal ${f.link} controls session ${sid.value} of the tree; stasis can only restore a pty as a controlling terminal`);
        }
        // Its settings, which the restore gives back (and CRIU 4.2 refuses a console or VT without).
        const params = withTaskFd(f.pid, f.fd, (fd) => {
          const w = getWinsize(fd);
          return {
            termios: termiosEntry(getTermios(fd)), termiosLocked: termiosEntry(getLockedTermios(fd)),
            winsize: { wsRow: w.row, wsCol: w.col, wsXpixel: w.xpixel, wsYpixel: w.ypixel },
          };
        });
        this.infos.push(create(TtyInfoEntrySchema, { ...base, ...params }));
      }
    }
  }

  /** Fills the infos of pty `index` (master and slave) and takes its queued bytes. */
  private pair(m: TtyFile, index: number, masterInfo: number, slaveInfo: number, tasks: TtyTask[]): void {
    const what = `pty ${index} (fd ${m.fd} of pid ${m.pid})`;
    const pidfd = pidfdOpen(m.pid);
    let master: number;
    try {
      master = pidfdGetfd(pidfd, m.fd);
    } finally {
      closeFd(pidfd);
    }
    let slave = -1;
    try {
      const lock = ttyGetInt(master, TIOC.TIOCGPTLCK);
      const locked = 'value' in lock && lock.value !== 0;
      // A locked pty opens no slave: unlocked for the time it takes.
      if (locked) ttySetInt(master, TIOC.TIOCSPTLCK, 0, 'TIOCSPTLCK');
      try {
        slave = openPtyPeer(master, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
      } finally {
        if (locked) ttySetInt(master, TIOC.TIOCSPTLCK, 1, 'TIOCSPTLCK');
      }
      const get = (fd: number, req: number | bigint) => {
        const r = ttyGetInt(fd, req);
        return 'value' in r ? r.value : 0;
      };
      // Through the master: TIOCGSID and TIOCGPGRP on the slave itself answer only its own session.
      const sid = get(master, TIOC.TIOCGSID), pgrp = sid ? get(master, TIOC.TIOCGPGRP) : 0;
      if (sid) {
        const leader = tasks.find((t) => t.pid === sid && t.sid === sid);
        if (!leader) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it controls session ${sid}, whose leader is not a live task of the tree`);
        if (!tasks.some((t) => t.pgid === pgrp)) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: its foreground group ${pgrp} is not a group of the tree`);
      }
      // Termios ioctls on a master act on its slave: the master's own (raw) termios is out of reach.
      const st = getTermios(slave), winsize = getWinsize(slave), owner = fs.fstatSync(slave);
      const ws = { wsRow: winsize.row, wsCol: winsize.col, wsXpixel: winsize.xpixel, wsYpixel: winsize.ypixel };
      const common = { type: TtyType.PTY, pty: { index }, winsize: ws, locked, packetMode: get(master, TIOC.TIOCGPKT) !== 0 };
      this.infos.push(
        create(TtyInfoEntrySchema, {
          ...common, id: masterInfo, exclusive: get(master, TIOC.TIOCGEXCL) !== 0, sid, pgrp, rdev: PTMX_RDEV,
          termios: termiosEntry(st), termiosLocked: termiosEntry(getLockedTermios(slave)),
        }),
        create(TtyInfoEntrySchema, {
          ...common, id: slaveInfo, exclusive: get(slave, TIOC.TIOCGEXCL) !== 0, sid, pgrp, uid: owner.uid, gid: owner.gid,
          rdev: ((136 + (index >> 8)) << 8) | (index & 0xff), termios: termiosEntry(st), termiosLocked: termiosEntry(getLockedTermios(slave)),
        }),
      );
      const q = takePtyQueues(master, slave, what);
      this.pairs.push({ master, slave, st, q, what });
      // CRIU's tty_id: the info of the side whose queue holds the bytes (CRIU 4.2 refuses another id as corrupt).
      if (q.toSlave.length) this.data.push(create(TtyDataEntrySchema, { ttyId: slaveInfo, data: q.toSlave }));
      if (q.toMaster.length) this.data.push(create(TtyDataEntrySchema, { ttyId: masterInfo, data: q.toMaster }));
    } catch (err) {
      if (slave >= 0) closeFd(slave);
      closeFd(master);
      throw err;
    }
  }

  /** The tree lives on (left running, or the dump failed): the queued bytes go back where they were. */
  putBack(): void {
    for (const p of this.pairs) writePtyQueues(p.master, p.slave, p.st, p.q, p.what);
    this.close();
  }

  close(): void {
    for (const p of this.pairs.splice(0)) {
      closeFd(p.slave);
      closeFd(p.master);
    }
  }
}
