import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIgmp, parseIgmp6 } from './igmp.js';

// Captured on Linux 6.18: lo and eth0 in 224.0.0.1 (lo joined by a socket too), lo in 239.1.2.3.
const IGMP = `Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     2      V3
\t\t\t\t030201EF     1 0:00000000\t\t0
\t\t\t\t010000E0     2 0:00000000\t\t0
4\teth0      :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
`;

const IGMP6 = `1    lo              ff020000000000000000000000000001     1 0000000C 0
4    eth0            ff0200000000000000000001ff000002     1 00000004 0
`;

test('parseIgmp() gives each group with its device, as the kernel word of its address', () => {
  const w = (a: number[]) => Buffer.from(a).readUInt32LE(0);
  assert.deepEqual(parseIgmp(IGMP), [
    { ifindex: 1, ifname: 'lo', group: [w([239, 1, 2, 3])], users: 1 },
    { ifindex: 1, ifname: 'lo', group: [w([224, 0, 0, 1])], users: 2 },
    { ifindex: 4, ifname: 'eth0', group: [w([224, 0, 0, 1])], users: 1 },
  ]);
});

test('parseIgmp6() reads the group in network order into four kernel words', () => {
  const g = parseIgmp6(IGMP6);
  assert.equal(g.length, 2);
  assert.deepEqual(g[1], { ifindex: 4, ifname: 'eth0', group: [0x2ff, 0, 0x01000000, 0x020000ff], users: 1 });
  const b = Buffer.alloc(16);
  g[1]!.group.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
  assert.equal(b.toString('hex'), 'ff0200000000000000000001ff000002');
});
