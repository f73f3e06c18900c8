// A network device moved into another network namespace through rtnetlink (RTM_SETLINK,
// net/core/rtnetlink.c do_setlink): IFLA_NET_NS_FD names the namespace, IFLA_NEW_IFINDEX the
// ifindex it takes there (`ip link set ... netns` cannot ask for one) and IFLA_IFNAME its new
// name. What CRIU does for --external netdev[IN]:OUT (criu/net.c move_veth).
import { addressOf, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, socket } from './sockets.js';

const NETLINK_ROUTE = 0, RTM_SETLINK = 19, NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLMSG_ERROR = 2;
const IFLA_IFNAME = 3, IFLA_NET_NS_FD = 28, IFLA_NEW_IFINDEX = 49;

function attr(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc((4 + value.length + 3) & ~3);
  b.writeUInt16LE(4 + value.length, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };

/** Moves device `ifindex` of this thread's namespace into the namespace of `nsFd`, as `name` at `newIfindex`. */
export function moveLinkToNetns(ifindex: number, nsFd: number, name: string, newIfindex: number): void {
  const what = `moving device ${ifindex} to ${name} (index ${newIfindex})`;
  const attrs = Buffer.concat([attr(IFLA_NET_NS_FD, u32(nsFd)), attr(IFLA_NEW_IFINDEX, u32(newIfindex)), attr(IFLA_IFNAME, Buffer.from(`${name}\0`))]);
  const req = Buffer.alloc(16 + 16 + attrs.length);
  req.writeUInt32LE(req.length, 0);
  req.writeUInt16LE(RTM_SETLINK, 4);
  req.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  req.writeUInt32LE(1, 8);
  // struct ifinfomsg: family AF_UNSPEC, type, index, flags, change (0: no flag changed).
  req.writeInt32LE(ifindex, 20);
  attrs.copy(req, 32);
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    const w = syscallRaw('write', fd, addressOf(req), req.length);
    if (w < 0n) throw new SyscallError('write', Number(-w), what);
    const buf = Buffer.alloc(1 << 14);
    const r = syscallRaw('read', fd, addressOf(buf), buf.length);
    if (r < 0n) throw new SyscallError('read', Number(-r), what);
    if (Number(r) < 20 || buf.readUInt16LE(4) !== NLMSG_ERROR) throw new SyscallError('rtnetlink', 5, `${what}: no acknowledgement`);
    const err = -buf.readInt32LE(16);
    if (err) throw new SyscallError('rtnetlink', err, what);
  } finally {
    syscallRaw('close', fd);
  }
}
