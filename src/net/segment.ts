// A bare TCP segment (no options, no data) inside an IPv4 or IPv6 header, as a peer would send
// it: what repair mode cannot do by itself, putting a FIN into a socket's receive queue or
// acknowledging the FIN it sent, is done by handing the socket such a segment (soccr's
// send_fin). Addresses are the kernel's 32-bit words, as images keep them.

export const TH_FIN = 0x01, TH_ACK = 0x10;

export interface Segment {
  /** 4 for IPv4, 6 for IPv6. */
  ip: 4 | 6;
  src: readonly number[];
  dst: readonly number[];
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
}

function addrBytes(words: readonly number[]): Buffer {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  return b;
}

/** The Internet checksum (RFC 1071) of the concatenated buffers. */
export function inetChecksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length & 1) sum += all[all.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The packet, headers included, and its destination address (4 or 16 bytes) for sendto. */
export function buildSegment(s: Segment): { packet: Buffer; dst: Buffer } {
  const src = addrBytes(s.src), dst = addrBytes(s.dst);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(s.srcPort, 0);
  tcp.writeUInt16BE(s.dstPort, 2);
  tcp.writeUInt32BE(s.seq >>> 0, 4);
  tcp.writeUInt32BE(s.ack >>> 0, 8);
  tcp.writeUInt8(5 << 4, 12); // data offset: 5 words, no options
  tcp.writeUInt8(s.flags, 13);
  tcp.writeUInt16BE(Math.min(s.window, 0xffff), 14);
  // The pseudo-header: addresses, protocol, TCP length (RFC 793; RFC 8200 8.1 for IPv6).
  const pseudo = s.ip === 4 ? Buffer.alloc(4) : Buffer.alloc(8);
  if (s.ip === 4) {
    pseudo.writeUInt8(6, 1);
    pseudo.writeUInt16BE(tcp.length, 2);
  } else {
    pseudo.writeUInt32BE(tcp.length, 0);
    pseudo.writeUInt8(6, 7);
  }
  tcp.writeUInt16BE(inetChecksum(src, dst, pseudo, tcp), 16);
  if (s.ip === 4) {
    const ip = Buffer.alloc(20);
    ip.writeUInt8(0x45, 0);
    ip.writeUInt16BE(ip.length + tcp.length, 2);
    ip.writeUInt8(64, 8); // TTL
    ip.writeUInt8(6, 9);
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(inetChecksum(ip), 10);
    return { packet: Buffer.concat([ip, tcp]), dst };
  }
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(tcp.length, 4);
  ip.writeUInt8(6, 6); // next header
  ip.writeUInt8(64, 7); // hop limit
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return { packet: Buffer.concat([ip, tcp]), dst };
}
