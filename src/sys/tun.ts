// The ioctls of /dev/net/tun (include/uapi/linux/if_tun.h, drivers/net/tun.c): what a tun
// file is attached to, and what makes a tun or tap device again (CRIU's criu/tun.c uses the
// same ones). Each takes the fd of an open /dev/net/tun: a task's, taken with pidfd_getfd, or
// one stasis opened in the device's network namespace (a tun file's namespace is the one it
// was opened in: TUNSETIFF looks its device up there).
import fs from 'node:fs';
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

// _IOW('T', n, int) = 0x400454nn, _IOR = 0x800454nn, _IO('T', n) = 0x54nn.
const TUNSETIFF = 0x400454ca, TUNSETPERSIST = 0x400454cb, TUNSETOWNER = 0x400454cc, TUNSETGROUP = 0x400454ce;
const TUNGETIFF = 0x800454d2, TUNGETSNDBUF = 0x800454d3, TUNSETSNDBUF = 0x400454d4;
const TUNGETVNETHDRSZ = 0x800454d7, TUNSETVNETHDRSZ = 0x400454d8, TUNSETQUEUE = 0x400454d9, TUNSETIFINDEX = 0x400454da;
const TUNGETVNETLE = 0x800454dd, TUNGETVNETBE = 0x800454df;
/** _IOR('T', 219, struct sock_fprog): 16 bytes on x86-64. */
const TUNGETFILTER = 0x801054db;
const TUNGETDEVNETNS = 0x54e3, SIOCGSKNS = 0x894c;

export const IFF_TUN = 0x1, IFF_TAP = 0x2, IFF_NAPI = 0x10, IFF_NAPI_FRAGS = 0x20, IFF_MULTI_QUEUE = 0x100;
export const IFF_ATTACH_QUEUE = 0x200, IFF_DETACH_QUEUE = 0x400, IFF_PERSIST = 0x800, IFF_NO_PI = 0x1000;
export const IFF_ONE_QUEUE = 0x2000, IFF_VNET_HDR = 0x4000;
/** TUNGETIFF's bit for a file without a socket filter: the same bit as IFF_NO_PI. */
export const IFF_NOFILTER = 0x1000;
/** The flags a device is made with (TUN_FEATURES and its type); IFF_PERSIST is set by TUNSETPERSIST. */
export const TUN_MAKE_FLAGS = IFF_TUN | IFF_TAP | IFF_NAPI | IFF_NAPI_FRAGS | IFF_MULTI_QUEUE | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR;
export const EBADFD = 77;
/** A tun file's socket buffer as tun_chr_open() leaves it (INT_MAX). */
export const TUN_DEFAULT_SNDBUF = 0x7fffffff;

const IFNAMSIZ = 16;

function check(r: bigint, what: string): bigint {
  if (r < 0n) throw new SyscallError('ioctl', Number(-r), what);
  return r;
}

function ifreq(name: string, flags: number): Buffer {
  const b = Buffer.alloc(40);
  b.write(name.slice(0, IFNAMSIZ - 1), 0, 'latin1');
  b.writeUInt16LE(flags & 0xffff, IFNAMSIZ);
  return b;
}

function withIfreq(fd: number, req: number, ifr: Buffer, what: string): Buffer {
  try {
    check(syscallRaw('ioctl', fd, req, addressOf(ifr)), what);
  } finally {
    keepAlive(ifr);
  }
  return ifr;
}

function getInt(fd: number, req: number, what: string): number {
  const v = Buffer.alloc(4);
  try {
    check(syscallRaw('ioctl', fd, req, addressOf(v)), what);
  } finally {
    keepAlive(v);
  }
  return v.readInt32LE(0);
}

function setInt(fd: number, req: number, value: number, what: string): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value | 0, 0);
  try {
    check(syscallRaw('ioctl', fd, req, addressOf(v)), what);
  } finally {
    keepAlive(v);
  }
}

/** TUNGETIFF: the device the tun file `fd` is attached to and its flags (with IFF_DETACH_QUEUE, IFF_NOFILTER of the file), or undefined for a file never attached (EBADFD). */
export function tunGetIff(fd: number): { name: string; flags: number } | undefined {
  const ifr = Buffer.alloc(40);
  const r = syscallRaw('ioctl', fd, TUNGETIFF, addressOf(ifr));
  keepAlive(ifr);
  if (r === -BigInt(EBADFD)) return undefined;
  check(r, 'TUNGETIFF');
  const raw = ifr.subarray(0, IFNAMSIZ);
  return { name: raw.subarray(0, raw.includes(0) ? raw.indexOf(0) : IFNAMSIZ).toString('latin1'), flags: ifr.readUInt16LE(IFNAMSIZ) };
}

/**
 * The inode of a network namespace of the tun file `fd`: the one it was opened in, where
 * TUNSETIFF looks its device up (SIOCGSKNS), or the one its device is in now (TUNGETDEVNETNS,
 * attached files only: a device may be moved to another).
 */
export function tunNetnsInode(fd: number, of: 'file' | 'device'): number {
  const req = of === 'file' ? SIOCGSKNS : TUNGETDEVNETNS;
  const ns = Number(check(syscallRaw('ioctl', fd, req, 0), of === 'file' ? 'SIOCGSKNS' : 'TUNGETDEVNETNS'));
  try {
    return fs.fstatSync(ns).ino;
  } finally {
    fs.closeSync(ns);
  }
}

/**
 * What a tun file attached to a device tells of it: the device's virtio header size, the
 * file's socket buffer, the length of a tap's socket filter (`tap`: TUNGETFILTER is a tap's
 * only), and whether the device's virtio headers are set little- or big-endian.
 */
export function tunAttachedState(fd: number, tap: boolean): { vnethdr: number; sndbuf: number; filterLen: number; vnetLe: number; vnetBe: number } {
  let filterLen = 0;
  if (tap) {
    const fprog = Buffer.alloc(16);
    try {
      check(syscallRaw('ioctl', fd, TUNGETFILTER, addressOf(fprog)), 'TUNGETFILTER');
    } finally {
      keepAlive(fprog);
    }
    filterLen = fprog.readUInt16LE(0);
  }
  // TUNGETVNETBE exists only with CONFIG_TUN_VNET_CROSS_LE: without it, no header is big-endian.
  let vnetBe = 0;
  try {
    vnetBe = getInt(fd, TUNGETVNETBE, 'TUNGETVNETBE');
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'EINVAL')) throw err;
  }
  return {
    vnethdr: getInt(fd, TUNGETVNETHDRSZ, 'TUNGETVNETHDRSZ'), sndbuf: getInt(fd, TUNGETSNDBUF, 'TUNGETSNDBUF'),
    filterLen, vnetLe: getInt(fd, TUNGETVNETLE, 'TUNGETVNETLE'), vnetBe,
  };
}

/** TUNSETIFF: attaches the tun file `fd` to device `name` of its namespace, making it if there is none; returns the device's name. */
export function tunSetIff(fd: number, name: string, flags: number): string {
  const ifr = withIfreq(fd, TUNSETIFF, ifreq(name, flags), `TUNSETIFF ${name} 0x${flags.toString(16)}`);
  const raw = ifr.subarray(0, IFNAMSIZ);
  return raw.subarray(0, raw.includes(0) ? raw.indexOf(0) : IFNAMSIZ).toString('latin1');
}

/** TUNSETQUEUE: detaches the queue of tun file `fd` from its multi-queue device (IFF_DETACH_QUEUE) or attaches it again (IFF_ATTACH_QUEUE). */
export function tunSetQueue(fd: number, flags: number): void {
  withIfreq(fd, TUNSETQUEUE, ifreq('', flags), `TUNSETQUEUE 0x${flags.toString(16)}`);
}

/** TUNSETIFINDEX: the ifindex the device the next TUNSETIFF of `fd` makes gets. */
export function tunSetIfindex(fd: number, ifindex: number): void {
  setInt(fd, TUNSETIFINDEX, ifindex, `TUNSETIFINDEX ${ifindex}`);
}

/** TUNSETPERSIST: whether the device of `fd` outlives its last file. */
export function tunSetPersist(fd: number, on: boolean): void {
  check(syscallRaw('ioctl', fd, TUNSETPERSIST, on ? 1 : 0), `TUNSETPERSIST ${on ? 1 : 0}`);
}

/** TUNSETOWNER and TUNSETGROUP: who may attach to the device of `fd` without CAP_NET_ADMIN (-1: nobody in particular). */
export function tunSetOwner(fd: number, owner: number, group: number): void {
  if (owner !== -1) check(syscallRaw('ioctl', fd, TUNSETOWNER, owner >>> 0), `TUNSETOWNER ${owner}`);
  if (group !== -1) check(syscallRaw('ioctl', fd, TUNSETGROUP, group >>> 0), `TUNSETGROUP ${group}`);
}

/** TUNSETSNDBUF: the socket buffer of every file attached to the device of `fd` (and of the device, for files attached later). */
export function tunSetSndbuf(fd: number, sndbuf: number): void {
  setInt(fd, TUNSETSNDBUF, sndbuf, `TUNSETSNDBUF ${sndbuf}`);
}

/** TUNSETVNETHDRSZ: the virtio header size of the device of `fd`. */
export function tunSetVnetHdrSz(fd: number, size: number): void {
  setInt(fd, TUNSETVNETHDRSZ, size, `TUNSETVNETHDRSZ ${size}`);
}

/**
 * Attaches tun file `fd` to device `name` of its namespace as a restored file is attached
 * (`flags` and `sndbuf` the device's, as TunLinkEntry holds them): its queue detached if it
 * was, the device's persistence dropped if it had none (it goes with its last file then),
 * and the device's socket buffer set again (a file attached after TUNSETSNDBUF has the default).
 */
export function tunAttach(fd: number, name: string, flags: number, sndbuf: number, detached: boolean): void {
  tunSetIff(fd, name, flags & TUN_MAKE_FLAGS);
  if (detached) tunSetQueue(fd, IFF_DETACH_QUEUE);
  if (!(flags & IFF_PERSIST)) tunSetPersist(fd, false);
  if (sndbuf !== TUN_DEFAULT_SNDBUF) tunSetSndbuf(fd, sndbuf | 0);
}
