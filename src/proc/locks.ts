// /proc/locks, and the `lock:` lines of fdinfo, share one printer (fs/locks.c,
// lock_get_status):  `1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 0 EOF`. Waiters blocked on
// a lock follow it as `1: -> FLOCK ...` (indented one column more per level of nesting).
import { ProcFormatError } from './proc-format-error.js';
import { decimal, decimalBig, hex, lines } from './scalars.js';

/** OFDLCK is an open file description lock; ACCESS a mandatory-locking probe; DELEG an NFS delegation. */
export type LockKind = 'POSIX' | 'OFDLCK' | 'ACCESS' | 'FLOCK' | 'LEASE' | 'DELEG' | 'UNKNOWN';
/** ADVISORY/MANDATORY for locks; ACTIVE/BREAKING/BREAKER for leases; NOINODE for a lock on no inode. */
export type LockMode = 'ADVISORY' | 'MANDATORY' | 'ACTIVE' | 'BREAKING' | 'BREAKER' | 'NOINODE' | 'UNKNOWN';
export type LockType = 'READ' | 'WRITE' | 'UNLCK';

export interface LockEntry {
  /** Position in the listing; a blocked waiter repeats the id of the lock it waits on. */
  id: number;
  /** A request waiting for the lock above it (`->`), not a lock held. */
  blocked: boolean;
  kind: LockKind;
  mode: LockMode;
  type: LockType;
  /** The owner; -1 for OFD locks, whose owner is a file description, not a process. */
  pid: number;
  /** Device of the locked inode, hex in the file (null for `<none>`). */
  dev: { major: number; minor: number } | null;
  ino: bigint | null;
  start: bigint;
  /** Last byte locked, inclusive; null for EOF (to the end of the file, always for FLOCK and leases). */
  end: bigint | null;
}

const KINDS: ReadonlySet<string> = new Set<LockKind>(['POSIX', 'OFDLCK', 'ACCESS', 'FLOCK', 'LEASE', 'DELEG', 'UNKNOWN']);
const MODES: ReadonlySet<string> = new Set<LockMode>(['ADVISORY', 'MANDATORY', 'ACTIVE', 'BREAKING', 'BREAKER', 'NOINODE', 'UNKNOWN']);
const TYPES: ReadonlySet<string> = new Set<LockType>(['READ', 'WRITE', 'UNLCK']);

/** Parses one lock line, without fdinfo's `lock:\t` prefix. */
export function parseLockLine(line: string, file = 'locks'): LockEntry {
  const t = line.split(/\s+/).filter((w) => w !== '');
  const fail = (detail: string): ProcFormatError => new ProcFormatError(file, detail, line);
  const idText = t.shift();
  if (idText === undefined || !idText.endsWith(':')) throw fail('expected "N:" first');
  let blocked = false;
  while (t[0] === '->') {
    blocked = true;
    t.shift();
  }
  // kind mode type pid major:minor:ino start end
  if (t.length !== 7) throw fail(`expected 7 fields after the id, got ${t.length}`);
  const [kind = '', modeText = '', type = '', pid, devIno = '', start, end] = t;
  const mode = modeText === '*NOINODE*' ? 'NOINODE' : modeText;
  if (!KINDS.has(kind)) throw fail(`lock kind "${kind}" is unknown`);
  if (!MODES.has(mode)) throw fail(`lock mode "${modeText}" is unknown`);
  if (!TYPES.has(type)) throw fail(`lock type "${type}" is unknown`);
  let dev: LockEntry['dev'] = null;
  let ino: bigint | null = null;
  if (!devIno.startsWith('<none>')) {
    const [major, minor, inode] = devIno.split(':');
    dev = { major: hex(major, file, 'lock device major', line), minor: hex(minor, file, 'lock device minor', line) };
    ino = decimalBig(inode, file, 'lock inode', line);
  }
  return {
    id: decimal(idText.slice(0, -1), file, 'lock id', line),
    blocked,
    kind: kind as LockKind,
    mode: mode as LockMode,
    type: type as LockType,
    pid: decimal(pid, file, 'lock pid', line),
    dev,
    ino,
    start: decimalBig(start, file, 'lock start', line),
    end: end === 'EOF' ? null : decimalBig(end, file, 'lock end', line),
  };
}

/** Parses /proc/locks: every lock in the system, held and waited for. */
export function parseLocks(text: string): LockEntry[] {
  return lines(text).map((line) => parseLockLine(line));
}
