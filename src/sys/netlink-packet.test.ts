import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  bindNetlink, closeFd, connectNetlink, getsocknameRaw, netlinkSockets, netnsCookie, packetRingsZero, packetSockets, setsockoptBytes,
  setsockoptInt, socket, AF_NETLINK, AF_PACKET, PACKET_RESERVE, PACKET_RX_RING, PACKET_VERSION, SOCK_CLOEXEC, SOCK_RAW, SOL_PACKET,
} from './index.js';

const inoOf = (fd: number) => Number(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))![1]);
const NETLINK_KOBJECT_UEVENT = 15;

test('netlinkSockets() reports a bound socket\'s port id and groups, and a connected one\'s peer and group', () => {
  const a = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  const b = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  try {
    bindNetlink(a, 0, 1 << 29); // port id of the kernel's choosing, group 30
    const port = getsocknameRaw(a).readUInt32LE(4);
    connectNetlink(b, port, 1 << 29);
    const m = netlinkSockets();
    const da = m.get(inoOf(a))!, db = m.get(inoOf(b))!;
    assert.equal(da.protocol, NETLINK_KOBJECT_UEVENT);
    assert.equal(da.portid, port);
    assert.equal(da.groups[0], 1 << 29);
    assert.equal(da.rmemAlloc, 0);
    assert.equal(db.state, 1, 'connected');
    assert.equal(db.dstPortid, port);
    assert.equal(db.dstGroup, 30, 'a group number, not a mask');
    assert.notEqual(db.portid, 0, 'connect() bound it');
    assert.equal(netnsCookie(a), netnsCookie(b));
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

test('packetSockets() reports a packet socket\'s options and ring; a ring nothing went through reads as zero', () => {
  // Protocol 0: it receives nothing, on no interface.
  const s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  try {
    setsockoptInt(s, SOL_PACKET, PACKET_VERSION, 1);
    setsockoptInt(s, SOL_PACKET, PACKET_RESERVE, 24);
    const req = Buffer.alloc(16);
    [4096, 2, 2048, 4].forEach((v, i) => req.writeUInt32LE(v, 4 * i));
    setsockoptBytes(s, SOL_PACKET, PACKET_RX_RING, req);
    const d = packetSockets().get(inoOf(s))!;
    assert.equal(d.type, SOCK_RAW);
    assert.equal(d.num, 0);
    assert.equal(d.version, 1);
    assert.equal(d.reserve, 24);
    assert.deepEqual([d.rxRing?.blockSize, d.rxRing?.blockNr, d.rxRing?.frameSize, d.rxRing?.frameNr], [4096, 2, 2048, 4]);
    assert.equal(d.txRing, undefined);
    assert.equal(d.fanout, undefined);
    assert.equal(packetRingsZero(s, 8192), true);
  } finally {
    closeFd(s);
  }
});
