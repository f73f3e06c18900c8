// TCP and UDP sockets of this network namespace as inet_diag reports them (net/ipv4/inet_diag.c,
// what `ss -t` / `ss -u` read): for a listener, rqueue is its accept queue and wqueue its backlog
// (sk_max_ack_backlog), which /proc/net/tcp does not show; for any socket, its shut sides.
import { sockDiagDump } from './sock-diag.js';

const IPPROTO_TCP = 6, IPPROTO_UDP = 17;

export interface InetDiag {
  ino: number;
  family: number;
  state: number;
  rqueue: number;
  wqueue: number;
  /** Ports in host order, addresses as the kernel's 32-bit words (four; IPv4 uses the first). */
  srcPort: number;
  dstPort: number;
  src: number[];
  dst: number[];
  /** sk_shutdown: 1 receiving side closed, 2 sending side closed. */
  shutdown: number;
}

const INET_DIAG_SHUTDOWN = 8;

/**
 * The TCP sockets of `family` (AF_INET or AF_INET6) in the states of the `states` bit mask, by
 * inode (a socket without one, not accepted yet, under a negative key).
 */
export function tcpSockets(family: number, states: number): Map<number, InetDiag> {
  return inetSockets(family, IPPROTO_TCP, states);
}

/** The UDP (or UDP-Lite, `protocol` 136) sockets of `family` in the states of `states`, by inode. */
export function udpSockets(family: number, states: number, protocol = IPPROTO_UDP): Map<number, InetDiag> {
  return inetSockets(family, protocol, states);
}

function inetSockets(family: number, protocol: number, states: number): Map<number, InetDiag> {
  // struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid (48 bytes).
  const req = Buffer.alloc(56);
  req.writeUInt8(family, 0);
  req.writeUInt8(protocol, 1);
  req.writeUInt32LE(states >>> 0, 4);
  const out = new Map<number, InetDiag>();
  sockDiagDump(req, protocol === IPPROTO_TCP ? 'TCP socket dump' : 'UDP socket dump', (m) => {
    // struct inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode.
    if (m.length < 72) return;
    const words = (at: number) => Array.from({ length: 4 }, (_, i) => m.readUInt32LE(at + 4 * i));
    const d = {
      family: m.readUInt8(0), state: m.readUInt8(1), rqueue: m.readUInt32LE(56), wqueue: m.readUInt32LE(60), ino: m.readUInt32LE(68),
      srcPort: m.readUInt16BE(4), dstPort: m.readUInt16BE(6), src: words(8), dst: words(24), shutdown: 0,
    };
    // Attributes (struct nlattr: length, type, payload padded to 4 bytes) after the message.
    for (let at = 72; at + 4 <= m.length;) {
      const len = m.readUInt16LE(at), type = m.readUInt16LE(at + 2);
      if (len < 4) break;
      if (type === INET_DIAG_SHUTDOWN && len >= 5) d.shutdown = m.readUInt8(at + 4);
      at += (len + 3) & ~3;
    }
    // Connections a listener has not accepted yet have no inode: keep them apart.
    out.set(d.ino || -(out.size + 1), d);
  });
  return out;
}
