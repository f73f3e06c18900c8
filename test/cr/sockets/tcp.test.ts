// TCP listeners, IPv4 and IPv6: after restore the same ports, backlog, options, O_NONBLOCK and
// fd numbers, and clients (this test, through node:net and node:http: it is not traced)
// connect and are answered by the restored server; bound and connected UDP sockets come back
// and trade datagrams, raw sockets; a listener in a network namespace of the tree's own comes
// back in a new one. Connections, a full accept queue and queued datagrams fail the dump
// cleanly and the tree keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import dgram from 'node:dgram';
import path from 'node:path';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir, waitFor, REPO, assertDumpRefused, verifyImages } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { parseNetSockets } from '../../../src/proc/index.js';
import { tcpSockets } from '../../../src/sys/index.js';

const inoAt = (pid: number, fd: number) => Number(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))![1]);
const netEntry = (pid: number, table: string, ino: number) =>
  parseNetSockets(fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8'), table).find((s) => s.ino === ino);

/** Connects, sends `text`, and gives back all the server answers before it closes. */
function ask(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => s.write(text));
    let got = '';
    s.setEncoding('utf8');
    s.setTimeout(15000, () => s.destroy(new Error(`no answer from ${host}:${port} in 15 s`)));
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

function httpGet(port: number, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 15000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject).on('timeout', function (this: http.ClientRequest) { this.destroy(new Error('http timeout')); });
  });
}

test('TCP listeners on 127.0.0.1 and [::1] come back on the same ports with their options, flags and fds, and answer clients', async () => {
  const w = new Workload('tcpserver', compileWorkload('tcpserver')).start();
  const [p4, p6] = fs.readFileSync(w.file('ports'), 'utf8').trim().split(' ').map(Number) as [number, number];
  const secret = fs.readFileSync(w.file('secret'), 'utf8');
  fs.rmSync(w.file('secret')); // the answer can only come from the restored memory
  const { images } = await checkpointRestore(w);
  const isks = readImage(images, 'files', undefined).filter((f) => f.isk).map((f) => f.isk!);
  assert.equal(isks.length, 2, 'fds 7 and 9 share one listener');
  const v4 = isks.find((k) => k.family === 2)!, v6 = isks.find((k) => k.family === 10)!;
  assert.deepEqual([v4.state, v4.srcPort, v4.srcAddr, v4.backlog, v4.opts?.reuseaddr, v4.opts?.soKeepalive, v4.tcpNodelay], [10, p4, [0x0100007f], 13, true, true, true]);
  assert.deepEqual([v6.state, v6.srcPort, v6.srcAddr, v6.backlog, v6.v6only, v6.opts?.soReuseport], [10, p6, [0, 0, 0, 0x01000000], 21, true, true]);
  assert.equal(inoAt(w.pid, 7), inoAt(w.pid, 9), 'fd 9 is fd 7 again');
  const l4 = netEntry(w.pid, 'tcp', inoAt(w.pid, 7))!, l6 = netEntry(w.pid, 'tcp6', inoAt(w.pid, 8))!;
  assert.deepEqual([l4.state, l4.localPort], [10, p4]);
  assert.deepEqual([l6.state, l6.localPort], [10, p6]);
  assert.equal(tcpSockets(2, 1 << 10).get(inoAt(w.pid, 7))?.wqueue, 13, 'the IPv4 listener\'s backlog');
  assert.equal(tcpSockets(10, 1 << 10).get(inoAt(w.pid, 8))?.wqueue, 21, 'the IPv6 listener\'s backlog');
  w.go();
  const [a4, a6] = await Promise.all([ask('127.0.0.1', p4, 'hello4'), ask('::1', p6, 'hello6')]);
  assert.equal(a4, `${secret}:hello4`);
  assert.equal(a6, `${secret}:hello6`);
  assertPassed(w.finish());
  assert.equal(fs.readFileSync(w.file('after'), 'utf8'), fs.readFileSync(w.file('before'), 'utf8'));
  assert.match(fs.readFileSync(w.file('before'), 'utf8'), /^fd 7: port \d+ fl 4002 reuseaddr 1 reuseport 0 keepalive 1 keepidle 33 nodelay 1 defer [1-9]\d* rcvbuf 200000 .*\nfd 8: port \d+ fl 2 reuseaddr 0 reuseport 1 .* v6only 1\n$/);
});

test('a listener shared by a parent and its forked child comes back shared, and both accept from it', async () => {
  const w = new Workload('tcptree', compileWorkload('tcpserver'), ['tree']).start();
  const port = Number(fs.readFileSync(w.file('ports'), 'utf8'));
  await checkpointRestore(w);
  const child = Number(fs.readFileSync(`/proc/${w.pid}/task/${w.pid}/children`, 'utf8').trim());
  assert.ok(child > 0, 'the child is back');
  assert.equal(inoAt(child, 7), inoAt(w.pid, 7), 'parent and child hold one listener');
  w.go();
  const answers = await Promise.all([ask('127.0.0.1', port, 'a'), ask('127.0.0.1', port, 'b')]);
  assert.deepEqual(answers.map((a) => a.split(':')[0]).sort(), ['child', 'parent']);
  assertPassed(w.finish());
});

/** Idle: the connections of earlier requests are gone from the server's fds (they may linger in TIME_WAIT). */
function waitIdle(pid: number): void {
  // An fd may close between the listing and its readlink: it is no socket of the server any more.
  const link = (fd: string) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  };
  const sockets = () => fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => link(fd).startsWith('socket:'));
  waitFor('the server to be idle', () => sockets().length === 1);
}

test('node\'s http server, dumped while idle, answers after restore (and after a second dump and restore) with the counter it kept in memory', async () => {
  const w = new Workload('httpcounter', process.execPath, [], [path.join(REPO, 'test/workloads/httpcounter.mjs')]).start();
  const port = Number(fs.readFileSync(w.file('port'), 'utf8'));
  assert.equal(await httpGet(port, '/'), `count 2 pid ${w.pid}\n`);
  waitIdle(w.pid);
  const { images } = await checkpointRestore(w);
  const isk = readImage(images, 'files', undefined).find((f) => f.isk)!.isk!;
  assert.deepEqual([isk.srcPort, isk.state, isk.opts?.reuseaddr], [port, 10, true]);
  assert.equal(await httpGet(port, '/'), `count 3 pid ${w.pid}\n`);
  assert.equal(await httpGet(port, '/'), `count 4 pid ${w.pid}\n`);
  // The restored listener is dumped and restored again, as a warmed-up service would be.
  waitIdle(w.pid);
  await checkpointRestore(w);
  assert.equal(await httpGet(port, '/'), `count 5 pid ${w.pid}\n`);
  assert.equal(await httpGet(port, '/quit'), 'bye\n');
  assertPassed(w.finish());
});

test('node\'s http server on [::] comes back listening on IPv6 and IPv4 both (IPV6_V6ONLY off)', async () => {
  const w = new Workload('httpcounter6', process.execPath, ['::'], [path.join(REPO, 'test/workloads/httpcounter.mjs')]).start();
  const port = Number(fs.readFileSync(w.file('port'), 'utf8'));
  waitIdle(w.pid);
  const { images } = await checkpointRestore(w);
  const isk = readImage(images, 'files', undefined).find((f) => f.isk)!.isk!;
  assert.deepEqual([isk.family, isk.srcAddr, isk.v6only], [10, [0, 0, 0, 0], false]);
  assert.equal(await httpGet(port, '/'), `count 2 pid ${w.pid}\n`, 'over IPv4');
  assert.equal(await ask('::1', port, 'GET / HTTP/1.0\r\n\r\n').then((r) => r.split('\r\n\r\n')[1]), `count 3 pid ${w.pid}\n`, 'over IPv6');
  assert.equal(await httpGet(port, '/quit'), 'bye\n');
  assertPassed(w.finish());
});

test('a bound UDP socket and one connected to it come back on the same ports, and trade datagrams', async () => {
  const w = new Workload('udp', compileWorkload('tcpserver'), ['udp']).start();
  const [p7, p8] = fs.readFileSync(w.file('ports'), 'utf8').trim().split(' ').map(Number) as [number, number];
  const { images } = await checkpointRestore(w);
  const isks = readImage(images, 'files', undefined).filter((f) => f.isk).map((f) => f.isk!);
  const bound = isks.find((k) => k.srcPort === p7)!, conn = isks.find((k) => k.srcPort === p8)!;
  assert.deepEqual([bound.proto, bound.type, bound.state, bound.dstPort, bound.opts?.soBroadcast], [17, 2, 7, 0, true]);
  assert.deepEqual([conn.proto, conn.state, conn.dstAddr, conn.dstPort], [17, 1, [0x0100007f], p7]);
  const out = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => out.send('outside', p7, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  out.close();
  w.go();
  assertPassed(w.finish());
  assert.equal(fs.readFileSync(w.file('after'), 'utf8'), fs.readFileSync(w.file('before'), 'utf8'));
  assert.match(fs.readFileSync(w.file('before'), 'utf8'), /^fd 7: .* broadcast 1\nfd 8: port \d+ fl 4002 .* broadcast 0\n$/);
});

test('a connection within the tree, dumped with --tcp-established and left running, carries on; restored from the same images, it carries on again', async () => {
  const w = new Workload('tcp-conn', compileWorkload('tcpserver'), ['established']).start();
  const images = tmpDir('tcp-conn-img');
  // Both ends are in the tree: nothing else sends to them, so no lock is needed (CRIU's --network-lock skip).
  await dump({ pid: w.pid, imagesDir: images, leaveRunning: true, tcpEstablished: true, networkLock: 'skip' });
  const conns = readImage(images, 'files', undefined).map((f) => f.isk).filter((k) => k?.dstPort);
  assert.deepEqual(conns.map((k) => k!.state), [1, 1], 'the server\'s end and the child\'s, established');
  for (const k of conns) assert.equal(readImage(images, 'tcp-stream', k!.ino).length, 1);
  verifyImages(images);
  w.go();
  assertPassed(w.finish());
  fs.rmSync(w.file('result'));
  await restore({ imagesDir: images, detach: true, tcpEstablished: true });
  assertPassed(w.finish());
});

test('a raw ICMP socket comes back as a raw ICMP socket', async () => {
  const w = new Workload('tcp-raw', compileWorkload('tcpserver'), ['raw']).start();
  const { images } = await checkpointRestore(w);
  const raw = readImage(images, 'files', undefined).map((f) => f.isk).find((k) => k?.type === 3);
  assert.deepEqual([raw?.family, raw?.proto, raw?.srcPort], [2, 1, 0], 'an IPv4 ICMP raw socket, no port');
  w.go();
  assertPassed(w.finish());
});

const REFUSALS = [
  ['established', 'an established connection of the tree', /is a TCP connection from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+ \(ESTABLISHED\): dumping connections needs --tcp-established \(or --tcp-close to restore them closed\)$/],
  ['udpqueued', 'a UDP socket with a datagram queued', /is a UDP socket on 127\.0\.0\.1:\d+ with datagrams queued \(\d+ bytes to receive, 0 to send\), not supported yet$/],
] as const;

test('a listener in a network namespace the tree made itself (unshare) comes back listening in a new one', async (t) => {
  const w = new Workload('tcp-netns', compileWorkload('tcpserver'), ['netns']).start();
  if (fs.existsSync(w.file('skip'))) {
    t.skip(`cannot make a network namespace: ${fs.readFileSync(w.file('skip'), 'utf8')}`);
    w.kill();
    return;
  }
  const { images } = await checkpointRestore(w);
  assert.ok(fs.readdirSync(images).some((f) => /^netdev-\d+\.img$/.test(f)), 'the namespace was not dumped');
  assert.notEqual(fs.readlinkSync(`/proc/${w.pid}/ns/net`), fs.readlinkSync('/proc/self/ns/net'), 'the restored tree is in stasis\'s network namespace');
  const l = netEntry(w.pid, 'tcp', inoAt(w.pid, 7));
  assert.equal(l?.state, 10, 'fd 7 is not a listener of the restored namespace');
  w.go();
  assertPassed(w.finish());
});

async function refused(w: Workload, why: RegExp): Promise<void> {
  await assertDumpRefused(w, 'E_UNSUPPORTED', [/^Cannot dump fd \d+ of pid \d+: socket:\[\d+\] /, why]);
}

for (const [mode, what, why] of REFUSALS) {
  test(`${what} fails the dump naming pid, fd and why, and the tree keeps working`, async (t) => {
    const w = new Workload(`tcp-${mode}`, compileWorkload('tcpserver'), [mode]).start();
    if (fs.existsSync(w.file('skip'))) {
      t.skip(`cannot make a network namespace: ${fs.readFileSync(w.file('skip'), 'utf8')}`);
      w.kill();
      return;
    }
    await refused(w, why);
    w.go();
    assertPassed(w.finish());
  });
}

test('a listener with a connection queued but not accepted fails the dump, and accepts it afterwards', async () => {
  const w = new Workload('tcp-queued', compileWorkload('tcpserver'), ['queued']).start();
  const port = Number(fs.readFileSync(w.file('ports'), 'utf8'));
  const s = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  waitFor('the connection in the accept queue', () => netEntry(w.pid, 'tcp', inoAt(w.pid, 7))?.rxQueue === 1);
  await refused(w, /is a TCP listener on 127\.0\.0\.1:\d+ with 1 connection\(s\) not accepted yet; --skip-in-flight leaves them out \(they are lost\)$/);
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (d) => (got += d));
  const ended = new Promise<void>((resolve, reject) => s.once('end', resolve).once('error', reject));
  s.write('ping');
  w.go();
  await ended;
  assert.equal(got, 'late:ping');
  assertPassed(w.finish());
});

test('a restore whose port another listener took fails naming the address, and leaves no process', async () => {
  const w = new Workload('tcp-taken', compileWorkload('tcpserver'), ['queued']).start();
  const port = Number(fs.readFileSync(w.file('ports'), 'utf8'));
  const images = tmpDir('tcp-taken-img');
  await dump({ pid: w.pid, imagesDir: images });
  const other = net.createServer();
  await new Promise<void>((resolve, reject) => other.listen(port, '127.0.0.1', resolve).once('error', reject));
  try {
    await assert.rejects(restore({ imagesDir: images, detach: true }), (e: unknown) => {
      assert.ok(e instanceof StasisError, String(e));
      assert.equal(e.code, 'E_RESTORE_FAILED');
      assert.match(e.message, new RegExp(`^Cannot restore TCP listener \\d+ on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      return true;
    });
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the failed restore left a process');
  } finally {
    other.close();
  }
});
