import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSegment, inetChecksum, TH_ACK, TH_FIN } from './segment.js';

test('inetChecksum() of data that holds its own checksum is zero (RFC 1071)', () => {
  const b = Buffer.from('4500003c1c4640004006000 0ac100a63ac100a0c'.replace(/ /g, ''), 'hex');
  b.writeUInt16BE(inetChecksum(b), 10);
  assert.equal(inetChecksum(b), 0);
  assert.equal(inetChecksum(Buffer.from([0xff])), 0x00ff, 'an odd byte is padded with a zero');
});

test('buildSegment() makes an IPv4 FIN|ACK from the peer with correct checksums, ports and sequence numbers', () => {
  // 10.0.0.1:40000 -> 10.0.0.2:8880, addresses as the kernel's 32-bit words.
  const { packet, dst } = buildSegment({
    ip: 4, src: [0x0100000a], dst: [0x0200000a], srcPort: 40000, dstPort: 8880, seq: 0xfffffffe, ack: 7, flags: TH_ACK | TH_FIN, window: 70000,
  });
  assert.equal(packet.length, 40);
  assert.deepEqual([...dst], [10, 0, 0, 2]);
  assert.equal(packet[0], 0x45);
  assert.equal(packet.readUInt16BE(2), 40, 'total length');
  assert.equal(inetChecksum(packet.subarray(0, 20)), 0, 'the IPv4 header checksum');
  assert.deepEqual([...packet.subarray(12, 20)], [10, 0, 0, 1, 10, 0, 0, 2]);
  const tcp = packet.subarray(20);
  assert.deepEqual([tcp.readUInt16BE(0), tcp.readUInt16BE(2), tcp.readUInt32BE(4), tcp.readUInt32BE(8)], [40000, 8880, 0xfffffffe, 7]);
  assert.equal(tcp[13], 0x11);
  assert.equal(tcp.readUInt16BE(14), 0xffff, 'a window beyond 16 bits is capped');
  const pseudo = Buffer.concat([packet.subarray(12, 20), Buffer.from([0, 6, 0, 20])]);
  assert.equal(inetChecksum(pseudo, tcp), 0, 'the TCP checksum, over the pseudo-header');
});

test('buildSegment() makes an IPv6 segment whose TCP checksum covers the IPv6 pseudo-header', () => {
  const lo = [0, 0, 0, 0x01000000];
  const { packet, dst } = buildSegment({ ip: 6, src: lo, dst: lo, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TH_ACK, window: 512 });
  assert.equal(packet.length, 60);
  assert.equal(packet[0]! >> 4, 6);
  assert.equal(packet.readUInt16BE(4), 20, 'payload length');
  assert.equal(packet[6], 6, 'next header: TCP');
  assert.equal(dst.length, 16);
  assert.equal(dst[15], 1);
  const pseudo = Buffer.concat([packet.subarray(8, 40), Buffer.from([0, 0, 0, 20, 0, 0, 0, 6])]);
  assert.equal(inetChecksum(pseudo, packet.subarray(40)), 0);
});
