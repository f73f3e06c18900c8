// The bytes queued in a pty pair: what the slave can read (written to the master, through
// the slave's line discipline) and what the master can read (the slave's output and its
// echoes). A tty cannot be peeked, so the dump reads them (and writes them back when the tree
// lives on). Reading a canonical slave whole needs it non-canonical for the time of the read:
// the line discipline then hands out every byte, also of a line not ended yet.
// Putting them back must not run them through the line discipline's processing again (no
// echo, no CR/NL mapping, no erase): they go in one by one with TIOCSTI, which runs the
// receive path at once (a write to the master queues them for a worker, which may run after
// the final termios is set), under a termios that keeps only what makes line ends: ICANON,
// and VEOL/VEOL2 as they were, '\n', with every other special character on a byte the data
// does not hold. Line ends come back where '\n', VEOL or VEOL2 bytes are; an end-of-file mark
// (^D in canonical mode) is held as a NUL byte, which only marks a line end when VEOL is unset.
import {
  addressOf, errnoName, getTermios, keepAlive, readRaw, setTermios, syscallRaw, ttyGetInt, SyscallError, TIOC,
  ICANON, IEXTEN, VEOF, VEOL, VEOL2, VERASE, VKILL, VLNEXT, VMIN, VREPRINT, VTIME, VWERASE, type Termios,
} from '../sys/index.js';
import { StasisError } from '../errors.js';

const TIOCSTI = 0x5412, EXTPROC = 0o200000;

export interface PtyQueues {
  /** What the slave can read. */
  toSlave: Buffer;
  /** What the master can read. */
  toMaster: Buffer;
}

function queued(fd: number): number {
  const r = ttyGetInt(fd, TIOC.FIONREAD);
  if ('errno' in r) throw new SyscallError('ioctl', r.errno, 'FIONREAD');
  return r.value;
}

function readAll(fd: number, n: number): Buffer {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const r = readRaw(fd, buf, got, n - got);
    if (r <= 0) break;
    got += r;
  }
  return buf.subarray(0, got);
}

/** Takes the queued bytes of a pair (slave and master opened by stasis, the slave O_NONBLOCK). */
export function takePtyQueues(master: number, slave: number, what: string): PtyQueues {
  const st = getTermios(slave);
  let toSlave: Buffer;
  if (st.lflag & ICANON) {
    const cc = [...st.cc];
    cc[VMIN] = 0;
    cc[VTIME] = 0;
    setTermios(slave, { ...st, lflag: st.lflag & ~ICANON, cc });
    try {
      toSlave = readAll(slave, queued(slave));
    } finally {
      setTermios(slave, st);
    }
  } else {
    toSlave = readAll(slave, queued(slave));
  }
  const n = queued(master);
  const packet = ttyGetInt(master, TIOC.TIOCGPKT);
  if (n && 'value' in packet && packet.value) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: its master is in packet mode with ${n} bytes queued, which stasis cannot read back exactly`);
  }
  const toMaster = readAll(master, n);
  if (st.lflag & ICANON && toSlave.includes(0) && st.cc[VEOL]) {
    writePtyQueues(master, slave, st, { toSlave, toMaster }, what);
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: its queued input holds a NUL byte, which cannot be told from an end-of-file mark`);
  }
  return { toSlave, toMaster };
}

/**
 * Puts queued bytes back into a pair whose slave's termios are `st`, and leaves them set. The
 * master's line discipline is raw (termios ioctls on a master reach its slave's: its own
 * cannot be changed), so its bytes go in as they are.
 */
export function writePtyQueues(master: number, slave: number, st: Termios, q: PtyQueues, what: string): void {
  if (q.toSlave.length) {
    setTermios(slave, writingTermios(st, q.toSlave, what));
    try {
      sti(slave, q.toSlave, what);
    } finally {
      setTermios(slave, st);
    }
  }
  if (q.toMaster.length) sti(master, q.toMaster, what);
}

/** No echo, signals or input mapping; only what marks line ends stays special. */
function writingTermios(t: Termios, data: Buffer, what: string): Termios {
  const canon = (t.lflag & ICANON) !== 0;
  const cc = [...t.cc];
  if (canon) {
    const used = new Set([...data, 0x0a, t.cc[VEOL], t.cc[VEOL2]]);
    const spare = Array.from({ length: 255 }, (_, i) => i + 1).find((b) => !used.has(b));
    if (spare === undefined) throw new StasisError('E_UNSUPPORTED', `Cannot restore the queued input of ${what}: it holds every byte value`);
    for (const i of [VERASE, VKILL, VEOF, VWERASE, VREPRINT, VLNEXT]) cc[i] = spare;
  }
  // EXTPROC stays too: a change of ICANON or EXTPROC would forget the line ends queued.
  return { ...t, iflag: 0, lflag: t.lflag & (ICANON | IEXTEN | EXTPROC), cc };
}

/** TIOCSTI: each byte through the tty's receive path, at once. */
function sti(fd: number, data: Buffer, what: string): void {
  const b = Buffer.alloc(1);
  for (const c of data) {
    b[0] = c;
    const r = syscallRaw('ioctl', fd, TIOCSTI, addressOf(b));
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot put the queued bytes of ${what} back: TIOCSTI failed with ${errnoName(Number(-r))}`);
  }
  keepAlive(b);
}
