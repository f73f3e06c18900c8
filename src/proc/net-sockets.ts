// /proc/PID/net/{tcp,tcp6,udp,udp6,raw,raw6}: one line per hashed socket of the task's network
// namespace (net/ipv4/tcp_ipv4.c get_tcp4_sock and friends). Addresses are the kernel's 32-bit
// words printed with %08X (the same words CRIU keeps in InetSkEntry.src_addr), ports in host
// order. For a TCP listener rx_queue is the connections waiting in its accept queue (tx_queue is
// write_seq - snd_una, not the backlog: inet_diag has that).
import { ProcFormatError } from './proc-format-error.js';

export interface NetSocket {
  ino: number;
  state: number;
  localAddr: number[];
  localPort: number;
  remoteAddr: number[];
  remotePort: number;
  txQueue: number;
  rxQueue: number;
}

function endpoint(file: string, s: string, line: string): [number[], number] {
  const m = /^([0-9A-F]{8}|[0-9A-F]{32}):([0-9A-F]{4})$/i.exec(s);
  if (!m) throw new ProcFormatError(file, `bad address ${JSON.stringify(s)}`, line);
  const hex = m[1]!;
  const words: number[] = [];
  for (let i = 0; i < hex.length; i += 8) words.push(parseInt(hex.slice(i, i + 8), 16));
  return [words, parseInt(m[2]!, 16)];
}

/** The sockets of one such table (`file` names it in errors: `net/tcp`). */
export function parseNetSockets(text: string, file: string): NetSocket[] {
  const out: NetSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    if (!line.trim()) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 10) throw new ProcFormatError(file, 'too few fields', line);
    const [localAddr, localPort] = endpoint(file, f[1]!, line);
    const [remoteAddr, remotePort] = endpoint(file, f[2]!, line);
    const q = /^([0-9A-F]+):([0-9A-F]+)$/i.exec(f[4]!);
    const ino = Number(f[9]);
    if (!q || !/^[0-9A-F]{2}$/i.test(f[3]!) || !Number.isSafeInteger(ino)) throw new ProcFormatError(file, 'bad state, queues or inode', line);
    out.push({ ino, state: parseInt(f[3]!, 16), localAddr, localPort, remoteAddr, remotePort, txQueue: parseInt(q[1]!, 16), rxQueue: parseInt(q[2]!, 16) });
  }
  return out;
}
