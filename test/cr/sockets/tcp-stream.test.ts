// A TCP stream across a checkpoint: a client process (not checkpointed) streams a few MiB over
// loopback to a server in the tree, which reads slowly; the server is dumped mid-stream with
// --tcp-established and killed, the client keeps sending into the network lock for a while,
// the server is restored, and the stream completes with the exact byte count and hash on both
// sides, with no reset seen. Once with the iptables lock over IPv4, once with nftables over
// IPv6. The lock's rules are checked while the server is away, and gone after the restore.
// Everything runs in a network namespace of its own (the file runs itself again under
// `unshare -n`), so that no rule can outlive it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { inOwnNetns, lockedRules, netnsUnavailable, runInOwnNetns } from './netns.js';
import { Workload, compileWorkload, assertPassed, tmpDir, waitFor, sleepMs } from '../harness.js';
import { critAvailable, critDecode } from '../../../src/image/crit.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage, writeImage } from '../../../src/image/index.js';

const BYTES = 8 << 20;
const FLAG = 'STASIS_TCP_STREAM_NETNS';

/**
 * With `farWl1`, the image says the send window was last moved by a segment 64 MiB past what
 * was received in order (snd_wl1 past rcv_nxt + rcv_wnd: a segment held out of order moves it
 * so, and the out-of-order queue is not dumped), which the kernel refuses to set as it is.
 */
async function stream(method: 'iptables' | 'nftables', family: 4 | 6, checkImages: boolean, farWl1 = false): Promise<void> {
  const bin = compileWorkload('tcpstream');
  const server = new Workload(`tcpstream-${method}`, bin, ['server', String(family)]).start();
  const port = fs.readFileSync(server.file('port'), 'utf8').trim();
  const client = new Workload(`tcpclient-${method}`, bin, ['client', String(family), port, String(BYTES)]).start();
  try {
    waitFor('the server to be mid-stream', () => fs.existsSync(server.file('progress')));
    const images = tmpDir(`tcpstream-${method}-img`);
    await dump({ pid: server.pid, imagesDir: images, tcpEstablished: true, networkLock: method });
    assert.equal(fs.existsSync(`/proc/${server.pid}`), false, 'the dump killed the server');
    assert.equal(lockedRules(method, `CRIU-${server.pid}`), method === 'iptables' ? 2 : 1, 'the connection is locked while its server is away');
    const conn = readImage(images, 'files', undefined).map((f) => f.isk).find((k) => k?.dstPort)!;
    assert.deepEqual([conn.state, conn.family], [1, family === 4 ? 2 : 10]);
    const [s] = readImage(images, 'tcp-stream', conn.ino);
    assert.ok(s && s.entry.inqLen > 0, `the dump caught bytes not read yet (${s?.entry.inqLen})`);
    // crit reads what holds the connection (every image would take long: crit is slow).
    if (checkImages && critAvailable()) for (const f of ['inventory.img', 'files.img', `tcp-stream-${conn.ino.toString(16)}.img`]) critDecode(`${images}/${f}`);
    if (farWl1) {
      s.entry.sndWl1 = (s.entry.inqSeq + (64 << 20)) >>> 0;
      writeImage(images, 'tcp-stream', conn.ino, [s]);
    }
    sleepMs(300); // the client's retransmissions meet the lock, and get no reset
    await restore({ imagesDir: images, detach: true, tcpEstablished: true, ...(farWl1 ? { noVerify: true } : {}) });
    assert.equal(lockedRules(method, `CRIU-${server.pid}`), 0, 'the restore unlocked the connection');
    assertPassed(client.finish(60000));
    assertPassed(server.finish(60000));
    assert.equal(fs.readFileSync(server.file('result'), 'utf8'), `PASS\n${BYTES} ${fs.readFileSync(client.file('result'), 'utf8').split('\n')[1]!.split(' ')[1]}\n`);
  } finally {
    client.kill();
    server.kill();
  }
}

/** A dump that fails once the connection is locked (an io_uring comes after it) unlocks it: the stream goes on. */
async function failedDump(): Promise<void> {
  const bin = compileWorkload('tcpstream');
  const server = new Workload('tcpstream-failed', bin, ['server', '4', 'uring']).start();
  const port = fs.readFileSync(server.file('port'), 'utf8').trim();
  const client = new Workload('tcpclient-failed', bin, ['client', '4', port, String(BYTES)]).start();
  try {
    waitFor('the server to be mid-stream', () => fs.existsSync(server.file('progress')));
    const lines: string[] = [];
    const keep = (m: string) => void lines.push(m);
    const log = { level: 4 as const, error: keep, warn: keep, info: keep, debug: keep };
    await assert.rejects(dump({ pid: server.pid, imagesDir: tmpDir('tcpstream-failed-img'), tcpEstablished: true, log }), /io_uring/);
    assert.ok(lines.some((l) => /^network lock \(iptables\): locked 127\.0\.0\.1:\d+ - 127\.0\.0\.1:\d+$/.test(l)), 'the connection was locked');
    assert.ok(lines.some((l) => /^network lock \(iptables\): unlocked /.test(l)), lines.join('\n'));
    assert.equal(lockedRules('iptables', ''), 0, 'the failed dump unlocked the connection');
    assertPassed(client.finish(60000));
    assertPassed(server.finish(60000));
  } finally {
    client.kill();
    server.kill();
  }
}

if (inOwnNetns(FLAG)) {
  await failedDump();
  await stream('iptables', 4, true);
  await stream('nftables', 6, false);
  await stream('iptables', 4, false, true);
  process.stdout.write('stream ok\n');
} else {
  test('a stream dumped mid-way with --tcp-established completes after restore with every byte, under the iptables lock (IPv4) and the nftables lock (IPv6), and with a snd_wl1 past the receive window; a dump that fails unlocks it at once; no rule is left', {
    skip: netnsUnavailable(['iptables-restore', 'ip6tables-restore', 'nft']),
  }, () => runInOwnNetns(import.meta.url, FLAG, /stream ok/));
}
