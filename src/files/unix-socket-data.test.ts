import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeFd, getsockoptInt, recvmsgInto, sendRaw, setsockoptInt, shutdown, socketpair,
  MSG_DONTWAIT, SHUT_WR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET, SO_PEEK_OFF,
} from '../sys/index.js';
import { checkUnixPeers, fillQueue, newUnixSkSink, peekQueue } from './unix-socket-data.js';

function withPair(type: number, fn: (a: number, b: number) => void): void {
  const [a, b] = socketpair(type | SOCK_CLOEXEC);
  try {
    fn(a, b);
  } finally {
    closeFd(a);
    closeFd(b);
  }
}

const bytes = (n: number, k: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + k) & 0xff));

/** Reads what is queued on fd, message by message, up to EAGAIN (or a stream's end of file). */
function drain(fd: number, stream = false): Buffer[] {
  const out: Buffer[] = [];
  const buf = Buffer.alloc(1 << 18);
  for (;;) {
    const r = recvmsgInto(fd, buf, 0, buf.length, MSG_DONTWAIT);
    if (r.n < 0 || (stream && r.n === 0)) return out;
    out.push(Buffer.from(buf.subarray(0, r.n)));
  }
}

for (const type of [SOCK_DGRAM, SOCK_SEQPACKET]) {
  const name = type === SOCK_DGRAM ? 'datagram socket, empty and large ones too' : 'seqpacket socket, large ones too';
  test(`peekQueue() takes every message of a ${name}, and consumes none`, () => {
    withPair(type, (a, b) => {
      const sent = [bytes(1, 1), ...(type === SOCK_DGRAM ? [bytes(0, 2)] : []), bytes(70000, 3), bytes(300, 4)];
      for (const m of sent) assert.equal(sendRaw(b, m, 0, m.length, MSG_DONTWAIT), m.length);
      const peeked = peekQueue(a, type, () => 'a test socket');
      assert.deepEqual(peeked, sent);
      assert.equal(getsockoptInt(a, SOL_SOCKET, SO_PEEK_OFF), -1, 'SO_PEEK_OFF is put back');
      assert.deepEqual(drain(a), sent, 'the queue is still there');
    });
  });
}

test('peekQueue() takes a stream socket\'s bytes up to its end of file and puts back an SO_PEEK_OFF the task had set', () => {
  withPair(SOCK_STREAM, (a, b) => {
    const data = bytes(200000, 5);
    for (let off = 0; off < data.length;) off += sendRaw(b, data, off, data.length - off, MSG_DONTWAIT);
    shutdown(b, SHUT_WR);
    setsockoptInt(a, SOL_SOCKET, SO_PEEK_OFF, 3);
    assert.deepEqual(peekQueue(a, SOCK_STREAM, () => 'a test socket'), [data]);
    assert.equal(getsockoptInt(a, SOL_SOCKET, SO_PEEK_OFF), 3);
    setsockoptInt(a, SOL_SOCKET, SO_PEEK_OFF, -1);
    assert.deepEqual(Buffer.concat(drain(a, true)), data);
  });
});

test('fillQueue() puts back more than the default send buffer holds, keeping message boundaries', () => {
  withPair(SOCK_DGRAM, (a, b) => {
    const msgs = Array.from({ length: 40 }, (_, i) => bytes(20000 + i, i));
    fillQueue(b, msgs, SOCK_DGRAM, 'a test socket');
    assert.deepEqual(drain(a), msgs);
  });
});

test('peekQueue() stops at the end of a shut seqpacket socket\'s queue, which reads as an empty message would', () => {
  withPair(SOCK_SEQPACKET, (a, b) => {
    const sent = [bytes(10, 1), bytes(0, 2), bytes(20, 3)];
    for (const m of sent) assert.equal(sendRaw(b, m, 0, m.length, MSG_DONTWAIT), m.length);
    shutdown(b, SHUT_WR);
    assert.deepEqual(peekQueue(a, SOCK_SEQPACKET, () => 'a test socket', 30, true), sent);
  });
});

test('checkUnixPeers() refuses a socket file of a tmpfs that no socket of the tree binds again, and takes one that one does', () => {
  const sink = newUnixSkSink();
  sink.tmpfsSockets.set('40:7', 'mount 82 at /mnt (tmpfs t) holds a Unix socket file (/mnt/s.sock)');
  assert.throws(() => checkUnixPeers(sink), /^StasisError: Cannot dump the tree: mount 82 at \/mnt \(tmpfs t\) holds a Unix socket file \(\/mnt\/s\.sock\), to which no socket of the tree is bound, which a tmpfs archive cannot keep$/);
  sink.boundFiles.add('40:7');
  checkUnixPeers(sink);
});
