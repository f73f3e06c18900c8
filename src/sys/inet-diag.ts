// TCP sockets of this network namespace as inet_diag reports them (net/ipv4/inet_diag.c, what
// `ss -t` reads): for a listener, rqueue is its accept queue and wqueue its backlog
// (sk_max_ack_backlog), which /proc/net/tcp does not show.
import { sockDiagDump } from './sock-diag.js';

const IPPROTO_TCP = 6;

export interface InetDiag {
  ino: number;
  family: number;
  state: number;
  rqueue: number;
  wqueue: number;
}

/** The TCP sockets of `family` (AF_INET or AF_INET6) in the states of the `states` bit mask, by inode. */
export function tcpSockets(family: number, states: number): Map<number, InetDiag> {
  // struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid (48 bytes).
  const req = Buffer.alloc(56);
  req.writeUInt8(family, 0);
  req.writeUInt8(IPPROTO_TCP, 1);
  req.writeUInt32LE(states >>> 0, 4);
  const out = new Map<number, InetDiag>();
  sockDiagDump(req, 'TCP socket dump', (m) => {
    // struct inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode.
    if (m.length < 72) return;
    const d = { family: m.readUInt8(0), state: m.readUInt8(1), rqueue: m.readUInt32LE(56), wqueue: m.readUInt32LE(60), ino: m.readUInt32LE(68) };
    out.set(d.ino, d);
  });
  return out;
}
