// Terminals at restore. A pty pair is made once, when its first file is opened: /dev/ptmx
// opened until the kernel hands out the pair's index (lower free ones are held meanwhile),
// unlocked, a slave opened by stasis for the setup, the queued bytes put back, then the
// termios, locked termios, window size and packet mode of each side set; the lock and
// exclusive mode go last, once every slave file is open. /dev/tty is opened by a short-lived
// helper that makes the pty its controlling terminal (a /dev/tty opened by stasis would be
// stasis's own terminal); the session leader takes the pty as its controlling terminal, and
// sets the foreground group, from inside (restoreCtty).
import fs from 'node:fs';
import { TtyType, type TermiosEntry, type TtyInfoEntry } from '../image/gen/stasis/tty_pb.js';
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { imageExists, readImage } from '../image/index.js';
import {
  closeFd, interrupt, kill, openat, openPtyPeer, pidfdGetfd, pidfdOpen, resolveExecutable, seize, setLockedTermios, setTermios, setWinsize,
  spawnTask, ttyCall, ttyGetInt, ttySetInt, waitPid, Injector, TIOC, type Termios,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { writePtyQueues } from './pty-queue.js';

const O_RDWR = 2, O_NOCTTY = 0o400, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;

export const termiosOf = (t: TermiosEntry): Termios => ({
  iflag: t.cIflag, oflag: t.cOflag, cflag: t.cCflag, lflag: t.cLflag, line: t.cLine, cc: t.cCc, ispeed: t.cIspeed, ospeed: t.cOspeed,
});

/** One pty pair made for the restore. */
export class PtyPair {
  private given = false;

  constructor(readonly index: number, readonly master: number, readonly slave: number, readonly masterInfo: TtyInfoEntry | undefined,
    readonly slaveInfo: TtyInfoEntry | undefined) {}

  /** The master fd, for the image's master file (OpenFiles closes it). */
  takeMaster(): number {
    if (this.given) throw new StasisError('E_CORRUPT', `The image holds two master files of pty ${this.index}`);
    this.given = true;
    return this.master;
  }
}

export class TtyRestoreState {
  readonly infos = new Map<number, TtyInfoEntry>();
  /** Queued bytes by the info of the side that reads them. */
  readonly data = new Map<number, Buffer>();
  readonly pairs = new Map<number, PtyPair>();
  /** Where the tree's files are seen (/proc/ROOT/root in a mount namespace of its own): its /dev/ptmx opens its devpts. */
  root = '';
  /** Pairs for slaves whose master was closed, by the slaves' info: closed once the slaves are open. */
  private readonly hungUp = new Map<number, { master: number; index: number }>();
  /** Masters opened while the mounts were made, by index: a mount binds their slave's node (zdtm pty-console). */
  private readonly early = new Map<number, number>();

  constructor(dir: string, files: Map<number, FileEntry>) {
    if (imageExists(dir, 'tty-info', undefined)) for (const i of readImage(dir, 'tty-info', undefined)) this.infos.set(i.id, i);
    if (!imageExists(dir, 'tty-data', undefined)) return;
    // tty_id names the info of the side that reads the bytes (CRIU's), or a file of it (stasis's older images).
    for (const d of readImage(dir, 'tty-data', undefined)) {
      this.data.set(this.infos.has(d.ttyId) ? d.ttyId : (files.get(d.ttyId)?.tty?.ttyInfoId ?? d.ttyId), Buffer.from(d.data));
    }
  }

  /** The info of one side of pty `index`. */
  side(index: number, master: boolean): TtyInfoEntry | undefined {
    for (const i of this.infos.values()) {
      if (i.type !== TtyType.PTY || i.pty?.index !== index) continue;
      const isMaster = i.rdev >> 8 === 5; // ptmx; a slave's major is 136 and up
      if (isMaster === master) return i;
    }
    return undefined;
  }

  hasMaster(index: number): boolean {
    return this.side(index, true) !== undefined;
  }

  /** A file of hung-up slave `info`: a pty of any index, whose master is closed in finish(). */
  hungUpSlave(info: TtyInfoEntry, flags: number): number {
    let pair = this.hungUp.get(info.id);
    if (!pair) {
      const master = openat(-100, `${this.root}/dev/ptmx`, O_RDWR | O_NOCTTY | O_CLOEXEC);
      const got = ttyGetInt(master, TIOC.TIOCGPTN);
      ttySetInt(master, TIOC.TIOCSPTLCK, 0, 'TIOCSPTLCK');
      pair = { master, index: 'value' in got ? got.value : -1 };
      this.hungUp.set(info.id, pair);
    }
    return openat(-100, `${this.root}/dev/pts/${pair.index}`, flags);
  }

  /** Once every file is open: the locks and exclusive modes; the setup slaves close; hung-up slaves hang up. */
  /**
   * Makes pty `index` of the devpts whose ptmx node is `ptmx` (a mount of the restored
   * namespace being made), before its files are opened, so that a mount can bind its slave's
   * node; its pair takes this master. Only a pty whose master a task holds lives on after.
   */
  makeEarly(index: number, ptmx: string): void {
    if (this.early.has(index)) return;
    if (!this.side(index, true)) throw new StasisError('E_RESTORE_FAILED', `Cannot restore pty ${index}, whose slave a mount binds: no task of the image holds its master`);
    this.early.set(index, openPtmxAt(index, ptmx));
  }

  /** The master made early for pty `index`, handed over once. */
  takeEarly(index: number): number | undefined {
    const fd = this.early.get(index);
    this.early.delete(index);
    return fd;
  }

  finish(): void {
    for (const p of this.hungUp.values()) closeFd(p.master);
    this.hungUp.clear();
    const left = [...this.early.keys()];
    for (const fd of this.early.values()) closeFd(fd);
    this.early.clear();
    if (left.length) throw new StasisError('E_RESTORE_FAILED', `Cannot restore ptys ${left.join(', ')}, whose slaves mounts bind: no file of the image opened them`);
    for (const p of this.pairs.values()) {
      if (p.slaveInfo?.exclusive) ttyCall(p.slave, TIOC.TIOCEXCL, 'TIOCEXCL');
      if (p.masterInfo?.locked) ttySetInt(p.master, TIOC.TIOCSPTLCK, 1, 'TIOCSPTLCK');
      closeFd(p.slave);
    }
  }
}

/** The pair of pty `index`, made on first use. */
export function ptyPair(state: TtyRestoreState, index: number): PtyPair {
  const have = state.pairs.get(index);
  if (have) return have;
  const early = state.takeEarly(index);
  const master = early ?? openPtmxAt(index, `${state.root}/dev/ptmx`);
  let slave = -1;
  try {
    ttySetInt(master, TIOC.TIOCSPTLCK, 0, 'TIOCSPTLCK');
    slave = openat(-100, `${state.root}/dev/pts/${index}`, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    // A master made early, in a devpts of the mounts: the tree's /dev/pts must be that one.
    if (early !== undefined) samePty(master, slave, index);
    const mi = state.side(index, true), si = state.side(index, false);
    if (si) fs.fchownSync(slave, si.uid, si.gid);
    if (si?.termios) {
      const bytes = (info: TtyInfoEntry | undefined) => (info && state.data.get(info.id)) || Buffer.alloc(0);
      writePtyQueues(master, slave, termiosOf(si.termios), { toSlave: bytes(si), toMaster: bytes(mi) }, `pty ${index}`);
    }
    if (si?.termiosLocked) setLockedTermios(slave, termiosOf(si.termiosLocked));
    const ws = si?.winsize ?? mi?.winsize;
    if (ws) setWinsize(slave, { row: ws.wsRow, col: ws.wsCol, xpixel: ws.wsXpixel, ypixel: ws.wsYpixel });
    if (mi?.packetMode) ttySetInt(master, TIOC.TIOCPKT, 1, 'TIOCPKT');
    const pair = new PtyPair(index, master, slave, mi, si);
    state.pairs.set(index, pair);
    return pair;
  } catch (err) {
    if (slave >= 0) closeFd(slave);
    closeFd(master);
    if (err instanceof StasisError) throw err;
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore pty ${index}: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether `slave` (opened by its path) is the slave of `master`: the same devpts node as the master's peer. */
function samePty(master: number, slave: number, index: number): void {
  const peer = openPtyPeer(master, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  try {
    const a = fs.fstatSync(peer), b = fs.fstatSync(slave);
    if (a.dev !== b.dev || a.ino !== b.ino) throw new StasisError('E_RESTORE_FAILED', `Cannot restore pty ${index}: the tree's /dev/pts/${index} is not of the devpts a mount binds it from`);
  } finally {
    closeFd(peer);
  }
}

/** A ptmx (`/dev/ptmx`, or a devpts's own node) opened until the kernel gives index `index` (it gives the lowest free one). */
function openPtmxAt(index: number, ptmx: string): number {
  const held: number[] = [];
  try {
    for (;;) {
      const fd = openat(-100, ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
      const got = ttyGetInt(fd, TIOC.TIOCGPTN);
      const n = 'value' in got ? got.value : -1;
      if (n === index) return fd;
      held.push(fd);
      if (n < 0 || n > index) throw new StasisError('E_RESTORE_FAILED', `Cannot restore pty ${index}: another process has it`);
    }
  } finally {
    for (const fd of held) closeFd(fd);
  }
}

/**
 * A /dev/tty file of the pair's slave: a helper process makes the pty its controlling
 * terminal and opens /dev/tty, stasis takes the file, the helper dies (a pty is not hung up
 * when the session leader that controls it exits).
 */
export function ctty(pair: PtyPair, flags: number): number {
  const devnull = { path: '/dev/null', flags: O_RDWR };
  const pid = spawnTask([resolveExecutable('sleep'), '3600'], { stdin: devnull, stdout: devnull, stderr: devnull });
  try {
    seize(pid, 0);
    interrupt(pid);
    waitPid(pid);
    const inj = new Injector(pid);
    let fd: bigint;
    try {
      const must = (what: string, r: bigint) => {
        if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open /dev/tty of pty ${pair.index}: ${what} failed with errno ${-r}`);
        return r;
      };
      must('setsid', inj.call('setsid'));
      const pidfd = must('pidfd_open', inj.call('pidfd_open', process.pid, 0));
      const m = must('pidfd_getfd', inj.call('pidfd_getfd', pidfd, pair.master, 0));
      must('TIOCSCTTY', inj.call('ioctl', m, TIOC.TIOCSCTTY, 0));
      inj.resetScratch();
      fd = must('open', inj.call('openat', -100, inj.putString('/dev/tty'), flags | O_NOCTTY | O_CLOEXEC, 0));
    } finally {
      inj.end();
    }
    const p = pidfdOpen(pid);
    try {
      return pidfdGetfd(p, Number(fd));
    } finally {
      closeFd(p);
    }
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
}

/**
 * In session leader `inj.pid` (`sid` as the tree numbers it): the ptys that controlled its
 * session, and their foreground groups. `take` gives the task a file of stasis (its fd).
 */
export function restoreCtty(inj: Injector, state: TtyRestoreState, sid: number, take: (toolFd: number) => bigint): void {
  for (const pair of state.pairs.values()) {
    const info = pair.slaveInfo;
    if (!info || info.sid !== sid) continue;
    inj.resetScratch();
    const fail = (what: string, r: bigint) => {
      throw new StasisError('E_RESTORE_FAILED', `Cannot make pty ${pair.index} the controlling terminal of pid ${inj.pid}: ${what} failed with errno ${-r}`);
    };
    const m = take(pair.master);
    if (m < 0n) fail('taking the master from stasis', m);
    try {
      const r = inj.call('ioctl', m, TIOC.TIOCSCTTY, 0);
      if (r < 0n) fail('TIOCSCTTY', r);
      if (info.pgrp) {
        const p = inj.call('ioctl', m, TIOC.TIOCSPGRP, inj.put(Buffer.from(new Int32Array([info.pgrp]).buffer)));
        if (p < 0n) fail(`TIOCSPGRP ${info.pgrp}`, p);
      }
    } finally {
      inj.call('close', m);
    }
  }
}

