// /proc/PID/fdinfo/FD: `pos:`, `flags:` (octal), `mnt_id:`, `ino:`, then lines that depend
// on the kind of file (Documentation/filesystems/proc.rst, "fdinfo"). Numbers come in
// mixed bases: flags is octal, eventfd-count, epoll and inotify fields are hex, even the
// mnt_id of a fanotify mount mark is hex while fdinfo's own mnt_id is decimal.
import { parseLockLine, type LockEntry } from './locks.js';
import { ProcFormatError } from './proc-format-error.js';
import { decimal, decimalBig, hex, hexBig, lines, octal } from './scalars.js';

export interface EventfdInfo {
  count: bigint;
  /** The eventfd's id, unique among live eventfds (newer kernels). */
  id?: number;
  /** EFD_SEMAPHORE (newer kernels). */
  semaphore?: boolean;
}

/** One `tfd:` line of an epoll instance: a watched file. */
export interface EpollTarget {
  /** The fd number the target had in the task that added it (it may since be closed). */
  tfd: number;
  events: number;
  data: bigint;
  pos: bigint;
  ino: bigint;
  /** Kernel dev_t encoding (major << 20 | minor): see kernelDev(). */
  sdev: number;
}

/** What name_to_handle_at() would return for the watched inode. */
export interface FileHandle {
  type: number;
  handle: Buffer;
}

export interface InotifyWatch {
  wd: number;
  ino: bigint;
  sdev: number;
  mask: number;
  ignoredMask: number;
  /** Absent when the filesystem cannot encode handles. */
  fhandle?: FileHandle;
}

interface FanotifyMarkBase {
  mflags: number;
  mask: number;
  ignoredMask: number;
}
export type FanotifyMark =
  | (FanotifyMarkBase & { target: 'inode'; ino: bigint; sdev: number; fhandle?: FileHandle })
  | (FanotifyMarkBase & { target: 'mount'; mntId: number })
  | (FanotifyMarkBase & { target: 'filesystem'; sdev: number });

export interface FanotifyInfo {
  /** fanotify_init() flags. */
  flags: number;
  /** fanotify_init() event_f_flags. */
  eventFlags: number;
  marks: FanotifyMark[];
}

export interface TimerfdInfo {
  clockid: number;
  /** Expirations not yet read. */
  ticks: bigint;
  /** TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET as given to timerfd_settime(). */
  settimeFlags: number;
  /** Time left until the next expiration (relative even for an absolute timer). */
  value: { sec: bigint; nsec: number };
  interval: { sec: bigint; nsec: number };
}

export interface Fdinfo {
  pos: bigint;
  /** O_* flags, octal in the file. */
  flags: number;
  mntId: number;
  /** The inode number (since 5.14). */
  ino?: bigint;
  // The kind-specific parts are absent when the file prints none of their lines, so an
  // epoll or inotify instance watching nothing has none: tell the kind from the fd's link.
  eventfd?: EventfdInfo;
  epoll?: EpollTarget[];
  signalfd?: { sigmask: bigint };
  inotify?: InotifyWatch[];
  fanotify?: FanotifyInfo;
  timerfd?: TimerfdInfo;
  /** Locks held through this file (`lock:` lines). */
  locks: LockEntry[];
  /** Other `key: value` lines as printed: tty-index, scm_fds, a pidfd's Pid and NSpid... */
  extra: Map<string, string>;
}

const FILE = 'fdinfo';

/** Splits a kernel dev_t (major in the top 12 bits of 32, minor in the low 20). */
export function kernelDev(sdev: number): { major: number; minor: number } {
  return { major: sdev >>> 20, minor: sdev & 0xfffff };
}

export function parseFdinfo(text: string): Fdinfo {
  const fields = new Map<string, string>();
  const locks: LockEntry[] = [];
  const epoll: EpollTarget[] = [];
  const inotify: InotifyWatch[] = [];
  let fanotify: FanotifyInfo | undefined;
  for (const line of lines(text)) {
    if (line.startsWith('tfd:')) epoll.push(epollTarget(line));
    else if (line.startsWith('inotify ')) inotify.push(inotifyWatch(line));
    else if (line.startsWith('fanotify ')) fanotify = fanotifyLine(line, fanotify);
    else if (line.startsWith('lock:')) locks.push(parseLockLine(line.slice(5), FILE));
    else {
      const colon = line.indexOf(':');
      if (colon < 0) throw new ProcFormatError(FILE, 'expected "key: value"', line);
      fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
    }
  }
  const take = (key: string): string | undefined => {
    const v = fields.get(key);
    fields.delete(key);
    return v;
  };
  const info: Fdinfo = {
    pos: decimalBig(take('pos'), FILE, 'pos'),
    flags: octal(take('flags'), FILE, 'flags'),
    mntId: decimal(take('mnt_id'), FILE, 'mnt_id'),
    locks,
    extra: fields,
  };
  const ino = take('ino');
  if (ino !== undefined) info.ino = decimalBig(ino, FILE, 'ino');

  const count = take('eventfd-count');
  if (count !== undefined) {
    info.eventfd = { count: hexBig(count, FILE, 'eventfd-count') };
    const id = take('eventfd-id');
    if (id !== undefined) info.eventfd.id = decimal(id, FILE, 'eventfd-id');
    const sem = take('eventfd-semaphore');
    if (sem !== undefined) info.eventfd.semaphore = decimal(sem, FILE, 'eventfd-semaphore') !== 0;
  }
  const sigmask = take('sigmask');
  if (sigmask !== undefined) info.signalfd = { sigmask: hexBig(sigmask, FILE, 'sigmask') };
  const clockid = take('clockid');
  if (clockid !== undefined) {
    info.timerfd = {
      clockid: decimal(clockid, FILE, 'clockid'),
      ticks: decimalBig(take('ticks'), FILE, 'ticks'),
      settimeFlags: octal(take('settime flags'), FILE, 'settime flags'),
      value: timespec(take('it_value'), 'it_value'),
      interval: timespec(take('it_interval'), 'it_interval'),
    };
  }
  if (epoll.length > 0) info.epoll = epoll;
  if (inotify.length > 0) info.inotify = inotify;
  if (fanotify !== undefined) info.fanotify = fanotify;
  return info;
}

function timespec(text: string | undefined, what: string): { sec: bigint; nsec: number } {
  const m = /^\((\d+), (\d+)\)$/.exec(text ?? '');
  if (!m) throw new ProcFormatError(FILE, `${what} is ${text === undefined ? 'missing' : `"${text}", not "(sec, nsec)"`}`);
  return { sec: BigInt(m[1] ?? ''), nsec: decimal(m[2], FILE, what) };
}

/**
 * The `key:value` and `key: value` pairs of an epoll, inotify or fanotify line (words
 * without a colon are skipped), with readers that name the line when a value is bad.
 */
function pairsOf(line: string, kind: string) {
  const p = new Map<string, string>();
  const t = line.split(/\s+/).filter((w) => w !== '');
  for (let i = 0; i < t.length; i++) {
    const w = t[i] ?? '';
    const colon = w.indexOf(':');
    if (colon < 0) continue;
    if (colon === w.length - 1) p.set(w.slice(0, -1), t[++i] ?? '');
    else p.set(w.slice(0, colon), w.slice(colon + 1));
  }
  return {
    has: (key: string): boolean => p.has(key),
    get: (key: string): string | undefined => p.get(key),
    dec: (key: string): number => decimal(p.get(key), FILE, `${kind} ${key}`, line),
    decBig: (key: string): bigint => decimalBig(p.get(key), FILE, `${kind} ${key}`, line),
    hex: (key: string): number => hex(p.get(key), FILE, `${kind} ${key}`, line),
    hexBig: (key: string): bigint => hexBig(p.get(key), FILE, `${kind} ${key}`, line),
  };
}
type Pairs = ReturnType<typeof pairsOf>;

function epollTarget(line: string): EpollTarget {
  const p = pairsOf(line, 'epoll');
  return { tfd: p.dec('tfd'), events: p.hex('events'), data: p.hexBig('data'), pos: p.decBig('pos'), ino: p.hexBig('ino'), sdev: p.hex('sdev') };
}

function fileHandle(p: Pairs, line: string): FileHandle | undefined {
  if (!p.has('fhandle-bytes')) return undefined;
  const n = p.hex('fhandle-bytes');
  const text = p.get('f_handle') ?? '';
  if (text.length !== n * 2 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new ProcFormatError(FILE, `f_handle is "${text}", not ${n} bytes of hex`, line);
  }
  return { type: p.hex('fhandle-type'), handle: Buffer.from(text, 'hex') };
}

function inotifyWatch(line: string): InotifyWatch {
  const p = pairsOf(line, 'inotify');
  const watch: InotifyWatch = { wd: p.hex('wd'), ino: p.hexBig('ino'), sdev: p.hex('sdev'), mask: p.hex('mask'), ignoredMask: p.hex('ignored_mask') };
  const fh = fileHandle(p, line);
  if (fh) watch.fhandle = fh;
  return watch;
}

function fanotifyLine(line: string, info: FanotifyInfo | undefined): FanotifyInfo {
  const p = pairsOf(line, 'fanotify');
  if (p.has('event-flags')) return { flags: p.hex('flags'), eventFlags: p.hex('event-flags'), marks: [] };
  if (!info) throw new ProcFormatError(FILE, 'a fanotify mark comes before the "fanotify flags:" line', line);
  const base = { mflags: p.hex('mflags'), mask: p.hex('mask'), ignoredMask: p.hex('ignored_mask') };
  if (p.has('ino')) {
    const mark: FanotifyMark = { target: 'inode', ino: p.hexBig('ino'), sdev: p.hex('sdev'), ...base };
    const fh = fileHandle(p, line);
    if (fh) mark.fhandle = fh;
    info.marks.push(mark);
  } else if (p.has('mnt_id')) {
    info.marks.push({ target: 'mount', mntId: p.hex('mnt_id'), ...base });
  } else if (p.has('sdev')) {
    info.marks.push({ target: 'filesystem', sdev: p.hex('sdev'), ...base });
  } else {
    throw new ProcFormatError(FILE, 'a fanotify mark has no ino, mnt_id or sdev', line);
  }
  return info;
}
