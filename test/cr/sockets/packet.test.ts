// Packet sockets (test/workloads/packet.c), in a network namespace of their own (a promiscuous
// membership and datagrams on lo): raw, datagram and SOCK_PACKET ones bound to lo with their
// options, memberships and fanout group, an RX ring mapped by the task that receives after
// restore; a ring frames were received into, and a fanout group of two, are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, assertPassed, assertDumpRefused, tmpDir, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { VMA } from '../../../src/mem/vma.js';
import { inOwnNetns, netnsUnavailable, runInOwnNetns, SBIN_ENV } from './netns.js';

const FLAG = 'STASIS_PACKET_NETNS';

/**
 * lo's promiscuity: a promiscuous membership counts one, and so does a unicast one (lo filters
 * no unicast addresses: the kernel makes it promiscuous for them).
 */
function loPromiscuity(): number {
  const out = execFileSync('ip', ['-d', 'link', 'show', 'lo'], { env: SBIN_ENV, encoding: 'utf8' });
  return Number(/promiscuity (\d+)/.exec(out)?.[1] ?? -1);
}

async function restored(): Promise<void> {
  const w = new Workload('packet', compileWorkload('packet')).start();
  assert.equal(loPromiscuity(), 2, 'the workload made lo promiscuous twice');
  const images = tmpDir('packet-img');
  await dump({ pid: w.pid, imagesDir: images });
  assert.equal(loPromiscuity(), 0, 'the dumped sockets are gone, and their memberships');
  verifyImages(images);
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  assert.equal(loPromiscuity(), 2, 'the restored sockets hold their memberships again');
  const files = readImage(images, 'files', undefined);
  const psk = files.filter((f) => f.psk).map((f) => f.psk!);
  assert.deepEqual(psk.map((k) => k.type).sort((a, b) => a - b), [2, 3, 10], 'a datagram, a raw and a SOCK_PACKET socket');
  const raw = psk.find((k) => k.type === 3)!;
  assert.equal(raw.version, 1);
  assert.equal(raw.rxRing?.frameNr, 4);
  assert.equal(raw.protocol, 0x0300, 'ETH_P_ALL in network order');
  const dgram = psk.find((k) => k.type === 2)!;
  assert.equal(dgram.fanout, 77 | (1 << 16), 'group 77, PACKET_FANOUT_LB');
  assert.deepEqual(dgram.mclist.map((m) => [m.type, m.addr.length]), [[3, 6]], 'a unicast membership of 6 bytes');
  assert.deepEqual(raw.mclist.map((m) => m.type), [1], 'a promiscuous membership');
  const mm = readImage(images, 'mm', w.pid)[0]!;
  const ring = mm.vmas.find((v) => v.status & VMA.SOCKET);
  assert.ok(ring, 'the ring is a SOCKET area');
  assert.equal(Number(ring.shmid), files.find((f) => f.psk?.type === 3)!.id, 'naming the raw socket');
  w.go();
  assertPassed(w.finish());
}

async function refused(mode: string, patterns: RegExp[]): Promise<void> {
  const w = new Workload(`packet-${mode}`, compileWorkload('packet'), [mode]).start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', patterns);
  } finally {
    w.kill();
  }
}

if (inOwnNetns(FLAG)) {
  await restored();
  await refused('used', [/fd 5 of pid \d+/, /ring frames were received or sent/]);
  await refused('fanout2', [/fd 6 of pid \d+/, /fanout group 77 with 1 other sockets/]);
  process.stdout.write('packet ok\n');
} else {
  test('packet sockets come back bound to lo with their options, memberships, fanout group and their ring mapped where it was, which receives; a used ring and a shared fanout group are refused', {
    skip: netnsUnavailable([]),
  }, () => runInOwnNetns(import.meta.url, FLAG, /packet ok/));
}
