// Terminal ioctls (include/uapi/asm-generic/ioctls.h, termbits.h for x86-64): the state of a
// tty read at dump and set back at restore, in stasis's own fds.
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

export const TIOC = {
  TCGETS2: 0x802c542an, TCSETS2: 0x402c542bn, TIOCEXCL: 0x540c, TIOCNXCL: 0x540d, TIOCSCTTY: 0x540e,
  TIOCGPGRP: 0x540f, TIOCSPGRP: 0x5410, TIOCGWINSZ: 0x5413, TIOCSWINSZ: 0x5414, FIONREAD: 0x541b, TIOCPKT: 0x5420,
  TIOCNOTTY: 0x5422, TIOCGSID: 0x5429, TIOCGPTN: 0x80045430n, TIOCSPTLCK: 0x40045431n, TIOCGPKT: 0x80045438n,
  TIOCGPTLCK: 0x80045439n, TIOCGDEV: 0x80045432n, TIOCGEXCL: 0x80045440n, TIOCGPTPEER: 0x5441, TIOCGLCKTRMIOS: 0x5456, TIOCSLCKTRMIOS: 0x5457,
} as const;

/** struct termios2: the four flag words, the line discipline, c_cc[19], the two speeds. */
export interface Termios {
  iflag: number;
  oflag: number;
  cflag: number;
  lflag: number;
  line: number;
  cc: number[];
  ispeed: number;
  ospeed: number;
}
export const NCCS = 19;
export const VINTR = 0, VQUIT = 1, VERASE = 2, VKILL = 3, VEOF = 4, VTIME = 5, VMIN = 6, VSTART = 8, VSTOP = 9, VSUSP = 10;
export const VEOL = 11, VREPRINT = 12, VDISCARD = 13, VWERASE = 14, VLNEXT = 15, VEOL2 = 16;
export const ICANON = 0o2, ECHO = 0o10, ISIG = 0o1, IEXTEN = 0o100000, OPOST = 0o1;

function ioctlRaw(fd: number, req: number | bigint, arg: bigint | number): bigint {
  return syscallRaw('ioctl', fd, req, arg);
}

function must(fd: number, req: number | bigint, arg: bigint | number, what: string): bigint {
  const r = ioctlRaw(fd, req, arg);
  if (r < 0n) throw new SyscallError('ioctl', Number(-r), what);
  return r;
}

/** An int-sized ioctl result (TIOCGPTN, TIOCGPKT, ...), or the errno where it fails. */
export function ttyGetInt(fd: number, req: number | bigint): { value: number } | { errno: number } {
  const b = new Int32Array(1);
  const r = ioctlRaw(fd, req, addressOf(b));
  keepAlive(b);
  return r < 0n ? { errno: Number(-r) } : { value: b[0] ?? 0 };
}

/** An ioctl taking a pointer to an int (TIOCSPTLCK, TIOCPKT, TIOCSPGRP). */
export function ttySetInt(fd: number, req: number | bigint, value: number, what: string): void {
  const b = new Int32Array([value]);
  must(fd, req, addressOf(b), what);
  keepAlive(b);
}

/** An ioctl without an argument (TIOCEXCL, TIOCNXCL, TIOCNOTTY). */
export function ttyCall(fd: number, req: number, what: string): void {
  must(fd, req, 0, what);
}

function decodeTermios(b: Buffer): Termios {
  return {
    iflag: b.readUInt32LE(0), oflag: b.readUInt32LE(4), cflag: b.readUInt32LE(8), lflag: b.readUInt32LE(12),
    line: b[16]!, cc: [...b.subarray(17, 17 + NCCS)], ispeed: b.readUInt32LE(36), ospeed: b.readUInt32LE(40),
  };
}

function encodeTermios(t: Termios): Buffer {
  const b = Buffer.alloc(44);
  b.writeUInt32LE(t.iflag >>> 0, 0);
  b.writeUInt32LE(t.oflag >>> 0, 4);
  b.writeUInt32LE(t.cflag >>> 0, 8);
  b.writeUInt32LE(t.lflag >>> 0, 12);
  b[16] = t.line;
  t.cc.slice(0, NCCS).forEach((c, i) => (b[17 + i] = c));
  b.writeUInt32LE(t.ispeed >>> 0, 36);
  b.writeUInt32LE(t.ospeed >>> 0, 40);
  return b;
}

export function getTermios(fd: number): Termios {
  const b = Buffer.alloc(44);
  must(fd, TIOC.TCGETS2, addressOf(b), 'TCGETS2');
  return decodeTermios(b);
}

/** TCSETS2: at once, nothing flushed (the queued input stays). */
export function setTermios(fd: number, t: Termios): void {
  const b = encodeTermios(t);
  must(fd, TIOC.TCSETS2, addressOf(b), 'TCSETS2');
  keepAlive(b);
}

/** The locked termios bits (TIOCGLCKTRMIOS takes the old struct termios, without speeds). */
export function getLockedTermios(fd: number): Termios {
  const b = Buffer.alloc(44);
  must(fd, TIOC.TIOCGLCKTRMIOS, addressOf(b), 'TIOCGLCKTRMIOS');
  return { ...decodeTermios(b), ispeed: 0, ospeed: 0 };
}

export function setLockedTermios(fd: number, t: Termios): void {
  const b = encodeTermios(t);
  must(fd, TIOC.TIOCSLCKTRMIOS, addressOf(b), 'TIOCSLCKTRMIOS');
  keepAlive(b);
}

export interface Winsize {
  row: number;
  col: number;
  xpixel: number;
  ypixel: number;
}

export function getWinsize(fd: number): Winsize {
  const b = Buffer.alloc(8);
  must(fd, TIOC.TIOCGWINSZ, addressOf(b), 'TIOCGWINSZ');
  return { row: b.readUInt16LE(0), col: b.readUInt16LE(2), xpixel: b.readUInt16LE(4), ypixel: b.readUInt16LE(6) };
}

export function setWinsize(fd: number, w: Winsize): void {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(w.row & 0xffff, 0);
  b.writeUInt16LE(w.col & 0xffff, 2);
  b.writeUInt16LE(w.xpixel & 0xffff, 4);
  b.writeUInt16LE(w.ypixel & 0xffff, 6);
  must(fd, TIOC.TIOCSWINSZ, addressOf(b), 'TIOCSWINSZ');
  keepAlive(b);
}

/** TIOCGPTPEER: a new open file of the slave of master `fd`. */
export function openPtyPeer(fd: number, flags: number): number {
  return Number(must(fd, TIOC.TIOCGPTPEER, flags, 'TIOCGPTPEER'));
}
