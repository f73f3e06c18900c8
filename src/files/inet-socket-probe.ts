// Where an IPv4/IPv6 socket of a task is: which of /proc/PID/net's tables lists its inode
// (tcp, tcp6, udp, udp6, udplite, udplite6, raw, raw6), and how its address reads.
import fs from 'node:fs';
import { parseNetSockets, type NetSocket } from '../proc/index.js';
import {
  AF_INET, AF_INET6, closeFd, getsockoptInt, getsocknameInet, peerNameInet, pidfdGetfd, pidfdOpen, tcpInfo,
  IPPROTO_TCP, IPPROTO_UDP, SOL_SOCKET, SO_DOMAIN, SO_PROTOCOL, SO_TYPE,
} from '../sys/index.js';

export interface InetProbe {
  proto: 'tcp' | 'udp' | 'udplite' | 'raw';
  family: number;
  sock: NetSocket;
  /** No table lists it (never bound, bound but not listening, or closed): read from the socket itself. */
  unlisted?: boolean;
}

const TABLES = ['tcp', 'tcp6', 'udp', 'udp6', 'udplite', 'udplite6', 'raw', 'raw6'] as const;

/** The table entry of socket inode `ino` in the network namespace of `pid`, if it has one. */
export function findInetSocket(pid: number, ino: number): InetProbe | undefined {
  for (const t of TABLES) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${t}`, 'utf8');
    } catch {
      continue; // a table the kernel does not have (no IPv6, no UDP-Lite)
    }
    // Cheap test first: the inode's digits must appear in the table at all.
    if (!text.includes(` ${ino} `)) continue;
    const sock = parseNetSockets(text, `net/${t}`).find((s) => s.ino === ino);
    if (sock) return { proto: t.replace(/6$/, '') as InetProbe['proto'], family: t.endsWith('6') ? AF_INET6 : AF_INET, sock };
  }
  return undefined;
}

/** 127.0.0.1:8080, [::1]:8080 */
export function formatInet(family: number, addr: readonly number[], port: number): string {
  const b = Buffer.alloc(4 * addr.length);
  addr.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  if (family === AF_INET) return `${[...b].join('.')}:${port}`;
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16));
  // The longest run of zero groups shortens to "::" (RFC 5952).
  let best = [-1, 0], run = [-1, 0];
  groups.forEach((g, i) => {
    if (g !== '0') return void (run = [-1, 0]);
    run = run[0] === -1 ? [i, 1] : [run[0]!, run[1]! + 1];
    if (run[1]! > best[1]!) best = run;
  });
  const text = best[1]! > 1
    ? `${groups.slice(0, best[0]).join(':')}::${groups.slice(best[0]! + best[1]!).join(':')}`
    : groups.join(':');
  return `[${text}]:${port}`;
}

export const TCP_STATES = ['', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV'];

const SOCK_RAW = 3, IPPROTO_UDPLITE = 136, TCP_CLOSE = 7;

/**
 * An IPv4/IPv6 socket that no table lists (CRIU's gen_uncon_sk): its family, protocol and
 * addresses from the socket itself, taken with pidfd_getfd. Undefined for other sockets.
 */
export function probeUnlisted(pid: number, fd: number, ino: number): InetProbe | undefined {
  let pidfd = -1, taken = -1;
  try {
    pidfd = pidfdOpen(pid);
    taken = pidfdGetfd(pidfd, fd);
    const family = getsockoptInt(taken, SOL_SOCKET, SO_DOMAIN);
    if (family !== AF_INET && family !== AF_INET6) return undefined;
    const type = getsockoptInt(taken, SOL_SOCKET, SO_TYPE), protocol = getsockoptInt(taken, SOL_SOCKET, SO_PROTOCOL);
    const proto = type === SOCK_RAW ? 'raw' : protocol === IPPROTO_TCP ? 'tcp' : protocol === IPPROTO_UDP ? 'udp' : protocol === IPPROTO_UDPLITE ? 'udplite' : undefined;
    if (!proto) return undefined;
    const name = getsocknameInet(taken), peer = peerNameInet(taken, family);
    const zero = family === AF_INET ? [0] : [0, 0, 0, 0];
    const sock: NetSocket = {
      ino, state: proto === 'tcp' ? tcpInfo(taken).state : TCP_CLOSE, localAddr: name.addr, localPort: name.port,
      remoteAddr: peer?.addr ?? zero, remotePort: peer?.port ?? 0, txQueue: 0, rxQueue: 0,
    };
    return { proto, family, sock, unlisted: true };
  } catch {
    return undefined; // gone, or not a socket stasis can look into
  } finally {
    if (taken >= 0) closeFd(taken);
    if (pidfd >= 0) closeFd(pidfd);
  }
}

/** Where socket fd `fd` of `pid` (inode `ino`) is: its table entry, or what the socket says. */
export function probeInetSocket(pid: number, fd: number, ino: number): InetProbe | undefined {
  return findInetSocket(pid, ino) ?? probeUnlisted(pid, fd, ino);
}
