// Netlink sockets (test/workloads/netlink.c), in a network namespace of their own (lo's MTU is
// changed, and no event of the machine's may reach the sockets): bound at a port id of the
// task's choosing and of the kernel's, on groups, connected to a port and a group, unbound,
// with options and flags; they carry messages after restore. One with a message queued is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { inOwnNetns, netnsUnavailable, runInOwnNetns } from './netns.js';

const FLAG = 'STASIS_NETLINK_NETNS';

async function restored(): Promise<void> {
  const w = new Workload('netlink', compileWorkload('netlink')).start();
  const { images } = await checkpointRestore(w);
  const nl = readImage(images, 'files', undefined).filter((f) => f.nlsk).map((f) => f.nlsk!);
  assert.equal(nl.length, 5, 'five netlink sockets');
  const route = nl.find((k) => k.protocol === 0)!;
  assert.equal(route.portid, 0x51a50000);
  assert.deepEqual(route.groups, [1]);
  const connected = nl.find((k) => k.state === 1)!;
  assert.equal(connected.dstPortid, 0x51a50001);
  assert.equal(connected.dstGroup, 5);
  assert.equal(nl.find((k) => k.protocol === 16)!.portid, 0, 'the generic one is unbound');
  w.go();
  assertPassed(w.finish());
}

async function refused(): Promise<void> {
  const w = new Workload('netlink-queued', compileWorkload('netlink'), ['queued']).start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/fd [67] of pid \d+/, /NETLINK_KOBJECT_UEVENT socket .*messages queued/]);
  } finally {
    w.kill();
  }
}

if (inOwnNetns(FLAG)) {
  await restored();
  await refused();
  process.stdout.write('netlink ok\n');
} else {
  test('netlink sockets come back at their port ids, groups and peers with their options, and carry messages on them; one with a message queued is refused', {
    skip: netnsUnavailable([]),
  }, () => runInOwnNetns(import.meta.url, FLAG, /netlink ok/));
}
