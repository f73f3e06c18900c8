import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { bindInet, closeFd, getsocknameInet, listen, socket, AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_STREAM, setsockoptInt } from './index.js';
import { tcpSockets } from './inet-diag.js';

const inoOf = (fd: number) => Number(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))![1]);
const LISTEN = 1 << 10;

test('tcpSockets() reports a listener\'s backlog, and bindInet() binds the address and port it is given', () => {
  const a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
  const b = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    bindInet(a, AF_INET, [0x0100007f], 0);
    listen(a, 17);
    const name = getsocknameInet(a);
    assert.deepEqual([name.family, name.addr], [AF_INET, [0x0100007f]]);
    assert.ok(name.port > 0);
    const d = tcpSockets(AF_INET, LISTEN).get(inoOf(a));
    assert.deepEqual([d?.state, d?.wqueue, d?.rqueue], [10, 17, 0]);
    setsockoptInt(b, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    bindInet(b, AF_INET6, [0, 0, 0, 0x01000000], name.port);
    listen(b, 3);
    assert.deepEqual(getsocknameInet(b), { family: AF_INET6, addr: [0, 0, 0, 0x01000000], port: name.port });
    assert.equal(tcpSockets(AF_INET6, LISTEN).get(inoOf(b))?.wqueue, 3);
    assert.equal(tcpSockets(AF_INET6, LISTEN).get(inoOf(a)), undefined, 'an IPv4 listener is not in the IPv6 dump');
  } finally {
    closeFd(a);
    closeFd(b);
  }
});
