import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetSockets } from './net-sockets.js';
import { ProcFormatError } from './proc-format-error.js';

// /proc/net/tcp and tcp6 on Linux 6.18 with a listener on 127.0.0.1:8080 (backlog 16, two
// connections not accepted), one of them, and a listener on [::1]:8081.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000010:00000002 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000080:00000000 00:00000000 00000000     0        0 41250 1 0000000000000000 100 0 0 10 0
`;

test('parseNetSockets() reads a listener\'s address, port and accept queue', () => {
  assert.deepEqual(parseNetSockets(TCP, 'net/tcp')[0], {
    ino: 41234, state: 10, localAddr: [0x0100007f], localPort: 8080, remoteAddr: [0], remotePort: 0, txQueue: 16, rxQueue: 2,
  });
});

test('parseNetSockets() reads a connection\'s remote end', () => {
  const c = parseNetSockets(TCP, 'net/tcp')[1]!;
  assert.equal(c.state, 1);
  assert.deepEqual([c.remoteAddr, c.remotePort], [[0x0100007f], 8080]);
});

test('parseNetSockets() reads an IPv6 address as four words', () => {
  const l = parseNetSockets(TCP6, 'net/tcp6')[0]!;
  assert.deepEqual(l.localAddr, [0, 0, 0, 0x01000000]);
  assert.equal(l.localPort, 8081);
  assert.equal(l.txQueue, 128);
});

test('parseNetSockets() names the table and the line of a bad address', () => {
  assert.throws(() => parseNetSockets(TCP.replace('0100007F:1F90 0000', '0100007G:1F90 0000'), 'net/tcp'), (e: unknown) =>
    e instanceof ProcFormatError && e.file === 'net/tcp' && /bad address/.test(e.message));
});
