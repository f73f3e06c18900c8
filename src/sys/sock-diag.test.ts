import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { closeFd, sendRaw, shutdown, socketpair, MSG_DONTWAIT, SHUT_WR, SOCK_CLOEXEC, SOCK_STREAM } from './index.js';
import { unixSockets } from './sock-diag.js';

const inoOf = (fd: number) => Number(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))![1]);

test('unixSockets() reports both ends of a socketpair as each other\'s peers, with queued bytes and shut sides', () => {
  const [a, b] = socketpair(SOCK_STREAM | SOCK_CLOEXEC);
  try {
    assert.equal(sendRaw(b, Buffer.alloc(1234, 1), 0, 1234, MSG_DONTWAIT), 1234);
    shutdown(b, SHUT_WR);
    const m = unixSockets();
    const da = m.get(inoOf(a))!, db = m.get(inoOf(b))!;
    assert.equal(da.peer, inoOf(b));
    assert.equal(db.peer, inoOf(a));
    assert.equal(da.type, SOCK_STREAM);
    assert.equal(da.state, 1);
    assert.equal(da.rqueue, 1234);
    assert.equal(db.shutdown, 2, 'b shut its sending side');
    assert.equal(da.shutdown, 1, 'so a can receive no more');
    assert.equal(da.name.length, 0);
  } finally {
    closeFd(a);
    closeFd(b);
  }
});
