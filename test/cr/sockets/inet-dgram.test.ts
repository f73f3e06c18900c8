// Datagram and raw inet sockets (test/workloads/inetdgram.c): an unbound UDP socket, a
// connected UDP-Lite pair, a UDP receiver with a classic BPF filter, raw ICMP and ICMPv6
// sockets with their filters and IP options; and a corked UDP socket, refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('unbound UDP, UDP-Lite, a socket filter and raw ICMP sockets with their options come back and carry datagrams', async () => {
  const w = new Workload('inetdgram', compileWorkload('inetdgram')).start();
  const { images } = await checkpointRestore(w);
  const isks = readImage(images, 'files', undefined).filter((f) => f.isk).map((f) => f.isk!);
  assert.equal(isks.filter((k) => k.proto === 136).length, 2, 'two UDP-Lite sockets');
  const filtered = isks.find((k) => k.opts?.soFilter.length);
  assert.ok(filtered, 'a socket with its filter');
  // BPF_STMT(BPF_RET | BPF_K, 11), as CRIU writes it: code << 48 | jt << 40 | jf << 32 | k.
  assert.deepEqual(filtered.opts!.soFilter, [(0x06n << 48n) | 11n]);
  const icmp = isks.find((k) => k.type === 3 && k.family === 2)!;
  assert.deepEqual(icmp.ipOpts?.raw?.icmpvFilter, [1 << 13]);
  assert.equal(icmp.ipOpts?.raw?.hdrincl, true);
  assert.equal(icmp.ipOpts?.ttl, 33);
  const icmp6 = isks.find((k) => k.type === 3 && k.family === 10)!;
  assert.equal(icmp6.ipOpts?.raw?.icmpvFilter.length, 8);
  assert.equal(icmp6.ipOpts?.pktinfo, true);
  w.go();
  assertPassed(w.finish());
});

test('a corked UDP socket is refused: the datagram it gathers cannot be read', async () => {
  const w = new Workload('inetdgram-cork', compileWorkload('inetdgram'), ['cork']).start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/fd 12 of pid \d+/, /datagrams queued|corked/]);
  } finally {
    w.go();
    w.finish();
  }
});
