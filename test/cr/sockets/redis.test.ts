// redis-server with a client connected (this test, over loopback): dumped mid-session with
// --tcp-established and killed, restored, and the same client connection carries on: redis
// knows it by the same client id, answers the next commands with the data it held in memory,
// and a new client connects too. In a network namespace of its own (see netns.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { inOwnNetns, lockedRules, netnsUnavailable, runInOwnNetns } from './netns.js';
import { tmpDir, waitFor } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { kill, spawnTask, waitPid } from '../../../src/sys/index.js';

const FLAG = 'STASIS_REDIS_NETNS';
const REDIS = '/usr/bin/redis-server';
const PORT = 6379; // the namespace is ours

/** One RESP connection: a command, then its one-line (or bulk) answer. */
class Client {
  private buf = '';
  private constructor(private readonly s: net.Socket) {
    s.setEncoding('utf8');
    s.on('data', (d: string) => (this.buf += d));
  }
  static async connect(): Promise<Client> {
    for (let i = 0; ; i++) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(PORT, '127.0.0.1', () => resolve(s));
          s.once('error', reject);
        });
        return new Client(s);
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  async cmd(...args: string[]): Promise<string> {
    this.buf = '';
    this.s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    const until = Date.now() + 20000;
    const complete = () => /^\$\d+\r\n.*\r\n$/s.test(this.buf) || /^[+:\-][^\r]*\r\n$/.test(this.buf);
    while (!complete()) {
      if (Date.now() > until) throw new Error(`no answer to ${args[0]} (got ${JSON.stringify(this.buf)})`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.buf.replace(/^\$\d+\r\n/, '').replace(/\r\n$/, '');
  }
  close(): void {
    this.s.destroy();
  }
}

async function session(): Promise<void> {
  const dir = tmpDir('redis');
  const pid = spawnTask([REDIS, '--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/redis.log` }, stderr: { path: `${dir}/redis.err` },
  });
  let c: Client | undefined;
  try {
    c = await Client.connect();
    const id = await c.cmd('CLIENT', 'ID');
    assert.equal(await c.cmd('SET', 'greeting', 'hello from before'), '+OK');
    assert.equal(await c.cmd('INCR', 'counter'), ':1');
    waitFor('redis to wait for commands', () => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('S'));
    const images = tmpDir('redis-img');
    await dump({ pid, imagesDir: images, tcpEstablished: true });
    assert.equal(fs.existsSync(`/proc/${pid}`), false, 'the dump killed redis');
    assert.equal(lockedRules('iptables', ''), 2, 'the client\'s connection is locked');
    await restore({ imagesDir: images, detach: true, tcpEstablished: true });
    assert.equal(lockedRules('iptables', ''), 0, 'and unlocked after the restore');
    // The same connection, the same client to redis, the same data.
    assert.equal(await c.cmd('CLIENT', 'ID'), id);
    assert.equal(await c.cmd('GET', 'greeting'), 'hello from before');
    assert.equal(await c.cmd('INCR', 'counter'), ':2');
    const other = await Client.connect();
    assert.equal(await other.cmd('INCR', 'counter'), ':3', 'a new client sees the same data');
    other.close();
  } finally {
    c?.close();
    kill(pid, 9);
    waitPid(pid);
  }
}

if (inOwnNetns(FLAG)) {
  await session();
  process.stdout.write('redis ok\n');
} else {
  const why = fs.existsSync(REDIS) ? netnsUnavailable(['iptables-restore']) : 'redis-server is not installed (apt-get install redis-server)';
  test('redis-server dumped with a client connected carries on with the same connection after restore', { skip: why }, () => {
    runInOwnNetns(import.meta.url, FLAG, /redis ok/);
  });
}
