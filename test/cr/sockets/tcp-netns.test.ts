// TCP connections in a network namespace of the tree's own, restored into a new one (zdtm's ns
// flavour: socket-tcp-close-wait, socket-tcpbuf-local and the like failed at restore so). The
// dump's network lock dies with the dumped namespace; the new one had none, so the bytes a
// restored socket sends anew (never sent before the dump) met its peer before that was
// restored, got a reset, and the restore failed with EPIPE; and the FIN stasis hands a socket
// as if from its peer went out in stasis's namespace, never reaching it (EIO). Here both ends
// of a half-closed connection with unsent bytes are in the tree, behind a rule of the
// namespace's own that drops FINs to the server's port (zdtm socket-tcp-closed-last-ack drops
// its port so): they come back in their states, the stream completes, and the restore leaves
// no rule of its lock in the new namespace. With the nftables lock, whose accept of marked
// packets cannot override a drop of another table, the FIN does not pass that rule: the restore
// fails saying so, and leaves no process and no table behind. The tree makes its namespace itself
// (unshare), so every rule dies with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, assertPassed, tmpDir } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { netnsUnavailable, SBIN_ENV } from './netns.js';

/** The iptables rules of the namespace of `pid`. */
function rulesOf(pid: number): string {
  return execFileSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'iptables-save'], { env: SBIN_ENV, encoding: 'utf8' });
}

test('a half-closed connection with unsent bytes in the tree\'s own network namespace comes back in a new one, past the namespace\'s rules, and leaves no lock there', async (t) => {
  const why = netnsUnavailable(['iptables', 'iptables-save', 'iptables-restore', 'nsenter']);
  if (why) return t.skip(why);
  const w = new Workload('tcp-netns-half', compileWorkload('tcpnetns')).start();
  if (fs.existsSync(w.file('skip'))) {
    t.skip(`the workload cannot set up its namespace: ${fs.readFileSync(w.file('skip'), 'utf8')}`);
    w.kill();
    return;
  }
  try {
    const [sent, unsent] = fs.readFileSync(w.file('sent'), 'utf8').split(' ').map(Number) as [number, number];
    assert.ok(unsent > 0, `the server had bytes never sent (${unsent} of ${sent})`);
    const port = fs.readFileSync(w.file('ports'), 'utf8');
    const images = tmpDir('tcp-netns-half-img');
    await dump({ pid: w.pid, imagesDir: images, tcpEstablished: true });
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the dump killed the tree');
    const states = readImage(images, 'files', undefined).flatMap((f) => (f.isk?.dstPort ? [f.isk.state] : [])).sort();
    assert.deepEqual(states, [5, 8], 'a FIN_WAIT2 and a CLOSE_WAIT connection were dumped');
    const r = await restore({ imagesDir: images, detach: true, tcpEstablished: true });
    assert.notEqual(fs.readlinkSync(`/proc/${r.pid}/ns/net`), fs.readlinkSync('/proc/self/ns/net'), 'the tree is in a namespace of its own');
    const rules = rulesOf(r.pid);
    assert.match(rules, new RegExp(`^-A INPUT -p tcp (-m tcp )?--dport ${port} --tcp-flags FIN FIN -j DROP$`, 'm'), 'the namespace\'s own rule came back');
    assert.doesNotMatch(rules, /0xc114/i, 'the restore left rules of its lock in the new namespace');
    w.go();
    const done = w.finish(60000);
    assertPassed(done);
    assert.equal(done.result, `PASS\n${sent}`, 'the client read every byte the server had sent');
  } finally {
    w.kill();
  }
});

test('with the nftables lock, a rule of the namespace that drops the peer\'s FIN fails the restore saying so, and leaves no process and no table', async (t) => {
  const why = netnsUnavailable(['iptables', 'nft']);
  if (why) return t.skip(why);
  const w = new Workload('tcp-netns-nft', compileWorkload('tcpnetns')).start();
  if (fs.existsSync(w.file('skip'))) {
    t.skip(`the workload cannot set up its namespace: ${fs.readFileSync(w.file('skip'), 'utf8')}`);
    w.kill();
    return;
  }
  try {
    const images = tmpDir('tcp-netns-nft-img');
    await dump({ pid: w.pid, imagesDir: images, tcpEstablished: true, networkLock: 'nftables' });
    await assert.rejects(restore({ imagesDir: images, detach: true, tcpEstablished: true }), (e: unknown) => {
      assert.ok(e instanceof StasisError, String(e));
      assert.equal(e.code, 'E_RESTORE_FAILED');
      assert.match(e.message, /^Cannot restore TCP connection \(CLOSE_WAIT\) \d+ on 127\.0\.0\.1:\d+ - 127\.0\.0\.1:\d+: .*after the peer's FIN: the segment did not reach the socket \(a netfilter rule may drop it\)/);
      return true;
    });
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the failed restore left a process');
    const tables = execFileSync('nft', ['list', 'tables'], { env: SBIN_ENV, encoding: 'utf8' });
    assert.doesNotMatch(tables, new RegExp(`CRIU-${w.pid}\\b`), 'a table of the lock was left in stasis\'s namespace');
  } finally {
    w.kill();
  }
});
