// Repair mode on this process's own loopback connections: a connection saved, its socket closed
// (silently: it is in repair mode) and built again on a fresh socket carries on with the same
// peer, with its unread bytes and its half-closed state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  accept4, bindInet, closeFd, connectInet, getsocknameInet, listen, recvmsgInto, sendRaw, setsockoptTimeval, shutdown, socket,
  tcpInfo, SyscallError, AF_INET, AF_INET6, SHUT_WR, SOCK_CLOEXEC, SOCK_STREAM, SO_RCVTIMEO,
} from '../sys/index.js';
import { repairOff, repairOn, restoreConnection, saveConnection, TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_FIN_WAIT2 } from './tcp-repair.js';
import { sleepSync } from '../sys/sleep.js';

/** A connected pair on the loopback address of `family`: [client, accepted]. */
function pair(family: number): [number, number] {
  const lo = family === AF_INET ? [0x0100007f] : [0, 0, 0, 0x01000000];
  const l = socket(family, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    bindInet(l, family, lo, 0);
    listen(l, 1);
    const c = socket(family, SOCK_STREAM | SOCK_CLOEXEC);
    connectInet(c, family, lo, getsocknameInet(l).port);
    return [c, accept4(l, SOCK_CLOEXEC)];
  } finally {
    closeFd(l);
  }
}

function canRepair(): string | false {
  const s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    repairOn(s);
    return false;
  } catch (err) {
    return `TCP_REPAIR: ${err instanceof SyscallError ? err.code : String(err)} (needs CAP_NET_ADMIN)`;
  } finally {
    closeFd(s);
  }
}
const skip = canRepair();

/** Reads `n` bytes (fewer at the end of the stream), waiting at most 5 s. */
function recvAll(fd: number, n: number): Buffer {
  setsockoptTimeval(fd, SO_RCVTIMEO, 5n, 0n);
  const buf = Buffer.alloc(Math.max(n, 1));
  let got = 0;
  while (got < n || n === 0) {
    const r = recvmsgInto(fd, buf, got, buf.length - got, 0);
    if (r.n <= 0) break;
    got += r.n;
    if (n === 0) break;
  }
  return buf.subarray(0, got);
}

for (const family of [AF_INET, AF_INET6]) {
  const v = family === AF_INET ? 'IPv4' : 'IPv6';
  test(`an ${v} connection moved to a fresh socket in repair mode keeps its unread bytes and talks on`, { skip }, () => {
    const [c, a] = pair(family);
    try {
      assert.equal(sendRaw(c, Buffer.from('queued before'), 0, 13, 0), 13);
      const peerName = getsocknameInet(c);
      const me = getsocknameInet(a);
      repairOn(a);
      const saved = saveConnection(a);
      assert.equal(saved.state, TCP_ESTABLISHED);
      assert.equal(saved.entry.inqLen, 13);
      assert.equal(saved.queues.toString(), 'queued before');
      closeFd(a);
      const b = socket(family, SOCK_STREAM | SOCK_CLOEXEC);
      try {
        repairOn(b);
        restoreConnection(b, { family, src: me.addr, srcPort: me.port, dst: peerName.addr, dstPort: peerName.port }, saved.state, saved.entry, saved.queues);
        repairOff(b);
        assert.equal(recvAll(b, 13).toString(), 'queued before');
        assert.equal(sendRaw(b, Buffer.from('answer'), 0, 6, 0), 6);
        assert.equal(recvAll(c, 6).toString(), 'answer');
      } finally {
        closeFd(b);
      }
    } finally {
      closeFd(c);
    }
  });
}

test('a connection the peer closed (CLOSE_WAIT) and one we closed (FIN_WAIT2) come back half-closed, FINs and all', { skip }, () => {
  for (const [who, want] of [['peer', TCP_CLOSE_WAIT], ['us', TCP_FIN_WAIT2]] as const) {
    const [c, a] = pair(AF_INET);
    try {
      assert.equal(sendRaw(c, Buffer.from('last words'), 0, 10, 0), 10);
      shutdown(who === 'peer' ? c : a, SHUT_WR);
      const deadline = Date.now() + 2000;
      while (tcpInfo(a).state !== want && Date.now() < deadline) sleepSync(5);
      const peerName = getsocknameInet(c), me = getsocknameInet(a);
      repairOn(a);
      const saved = saveConnection(a);
      assert.equal(saved.state, want);
      closeFd(a);
      const b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
      try {
        repairOn(b);
        restoreConnection(b, { family: AF_INET, src: me.addr, srcPort: me.port, dst: peerName.addr, dstPort: peerName.port }, saved.state, saved.entry, saved.queues);
        repairOff(b);
        assert.equal(tcpInfo(b).state, want);
        assert.equal(recvAll(b, 10).toString(), 'last words');
        if (who === 'peer') {
          assert.equal(recvAll(b, 0).length, 0, 'then the end of the stream');
          assert.equal(sendRaw(b, Buffer.from('bye'), 0, 3, 0), 3, 'a half-closed connection still sends');
          assert.equal(recvAll(c, 3).toString(), 'bye');
        } else {
          assert.equal(sendRaw(c, Buffer.from('still'), 0, 5, 0), 5, 'the peer still sends to us');
          assert.equal(recvAll(b, 5).toString(), 'still');
        }
      } finally {
        closeFd(b);
      }
    } finally {
      closeFd(c);
    }
  }
});
