// Where an IPv4/IPv6 socket of a task is: which of /proc/PID/net's tables lists its inode
// (tcp, tcp6, udp, udp6, udplite, udplite6, raw, raw6), and how its address reads.
import fs from 'node:fs';
import { parseNetSockets, type NetSocket } from '../proc/index.js';
import { AF_INET, AF_INET6 } from '../sys/index.js';

export interface InetProbe {
  proto: 'tcp' | 'udp' | 'udplite' | 'raw';
  family: number;
  sock: NetSocket;
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
