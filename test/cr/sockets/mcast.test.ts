// Multicast memberships of inet sockets (test/workloads/mcast.c), in a network namespace of its
// own with a veth pair (mc0, mc1): IPv4 and IPv6 UDP receivers and a raw socket in groups of
// mc0, with source filters, IPv4 groups of an IPv6 socket, groups left before the dump, and the
// senders' multicast options. After restore the workload reads each membership back and
// receives a datagram to each group, and none to a group left or from a source filtered out.
// An image without the memberships (CRIU's) restores with none; a restore where the
// interface is gone fails, naming it; a TCP socket in a group is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused, tmpDir } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { readImage, writeImage } from '../../../src/image/index.js';
import type { InetSkEntry } from '../../../src/image/gen/stasis/sk-inet_pb.js';
import { inOwnNetns, netnsUnavailable, runInOwnNetns, SBIN_ENV } from './netns.js';

const FLAG = 'STASIS_MCAST_NETNS';
const ip = (...args: string[]) => execFileSync('ip', args, { env: SBIN_ENV });

function makeDevices(): void {
  ip('link', 'add', 'mc0', 'type', 'veth', 'peer', 'name', 'mc1');
  ip('link', 'set', 'mc1', 'up');
  ip('link', 'set', 'mc0', 'up');
  ip('addr', 'add', '10.77.0.1/24', 'dev', 'mc0');
  ip('addr', 'add', '10.77.0.9/24', 'dev', 'mc0');
  ip('-6', 'addr', 'add', 'fd77::1/64', 'dev', 'mc0', 'nodad');
}

/** An address of the image (kernel words) as text. */
function text(family: number, words: readonly number[]): string {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  if (family === 2) return [...b].join('.');
  return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':').replace(/(^|:)(0:)+/, '::');
}

const groupsOf = (k: InetSkEntry) => k.mcGroups.map((g) => ({
  group: text(g.family, g.group), ifname: g.ifname, fmode: g.fmode,
  sources: Array.from({ length: g.sources.length / g.group.length }, (_, i) => text(g.family, g.sources.slice(i * g.group.length, (i + 1) * g.group.length))),
})).sort((a, b) => a.group.localeCompare(b.group));

async function restored(): Promise<void> {
  const w = new Workload('mcast', compileWorkload('mcast')).start();
  const { images } = await checkpointRestore(w);
  const isks = readImage(images, 'files', undefined).filter((f) => f.isk).map((f) => f.isk!);
  const port = (p: number) => isks.find((k) => k.srcPort === p)!;
  // Only the groups the sockets joined: not those left, nor the kernel's own (224.0.0.1, ff02::1, ...).
  assert.deepEqual(groupsOf(port(45400)), [
    { group: '239.1.1.1', ifname: 'mc0', fmode: 0, sources: [] },
    { group: '239.1.1.2', ifname: 'mc0', fmode: 1, sources: ['10.77.0.1'] },
    { group: '239.1.1.4', ifname: 'mc0', fmode: 0, sources: ['10.77.0.9'] },
  ]);
  assert.deepEqual(groupsOf(port(45406)), [
    { group: '239.1.1.5', ifname: 'mc0', fmode: 0, sources: [] },
    { group: 'ff15::1', ifname: 'mc0', fmode: 0, sources: [] },
    { group: 'ff15::2', ifname: 'mc0', fmode: 1, sources: ['fd77::1'] },
  ]);
  const raw = isks.find((k) => k.type === 3)!;
  assert.deepEqual(groupsOf(raw).map((g) => g.group), ['239.1.1.6']);
  assert.equal(port(45400).mcOpts?.all, false);
  const s4 = isks.find((k) => k.family === 2 && k.type === 2 && k.srcPort !== 45400)!;
  assert.equal(s4.mcOpts?.ttl, 5);
  assert.equal(text(2, [s4.mcOpts!.ifAddr]), '10.77.0.1');
  const s6 = isks.find((k) => k.family === 10 && k.srcPort !== 45406)!;
  assert.equal(s6.mcOpts?.ifname6, 'mc0');
  assert.equal(s6.mcOpts?.hops6, 7);
  w.go();
  assertPassed(w.finish());
}

/** An image as CRIU writes it, without stasis's multicast fields: the sockets come back in no group. */
async function withoutMemberships(): Promise<void> {
  const w = new Workload('mcast-criu', compileWorkload('mcast')).start();
  const images = tmpDir('mcast-criu-img');
  await dump({ pid: w.pid, imagesDir: images });
  const files = readImage(images, 'files', undefined);
  let had = 0;
  for (const f of files) {
    if (!f.isk) continue;
    had += f.isk.mcGroups.length;
    f.isk.mcGroups = [];
    f.isk.mcOpts = undefined;
  }
  assert.equal(had, 7, 'the dump kept 7 memberships');
  writeImage(images, 'files', undefined, files);
  fs.writeFileSync(w.file('nomc'), '');
  const r = await restore({ imagesDir: images, detach: true, noVerify: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
}

/** The interface a group was joined on is gone at restore: the restore fails naming it, and leaves nothing. */
async function interfaceGone(): Promise<void> {
  const w = new Workload('mcast-gone', compileWorkload('mcast')).start();
  const images = tmpDir('mcast-gone-img');
  await dump({ pid: w.pid, imagesDir: images });
  ip('link', 'del', 'mc0');
  await assert.rejects(restore({ imagesDir: images, detach: true }), (e: unknown) => {
    assert.ok(e instanceof StasisError, String(e));
    assert.equal(e.code, 'E_RESTORE_FAILED', e.message);
    assert.match(e.message, /interface mc0/);
    return true;
  });
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the failed restore left its task behind');
  makeDevices();
}

/** A TCP socket can join IPv4 groups too; stasis does not restore them there: refused. */
async function tcpRefused(): Promise<void> {
  const w = new Workload('mcast-tcp', compileWorkload('mcast'), ['tcp']).start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/fd 10 of pid \d+/, /TCP socket in multicast group 239\.1\.1\.7 on mc0/]);
  } finally {
    w.kill();
  }
}

if (inOwnNetns(FLAG)) {
  makeDevices();
  await restored();
  await withoutMemberships();
  await interfaceGone();
  // Last: the refused workload is killed, not waited for, and may hold its ports a moment longer.
  await tcpRefused();
  process.stdout.write('mcast ok\n');
} else {
  test('multicast memberships of UDP and raw sockets, IPv4 and IPv6, with their source filters and options, come back and receive; an image without them restores none; a missing interface fails the restore; a TCP socket in a group is refused', {
    skip: netnsUnavailable([]),
  }, () => runInOwnNetns(import.meta.url, FLAG, /mcast ok/));
}
