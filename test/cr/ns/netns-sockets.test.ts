// A tree in a network namespace of its own (`unshare -n --fork`) holding Unix, packet and
// netlink sockets of that namespace: a stream pair with data queued both ways, a listener on
// an abstract name with a client it accepted (data queued) and one it has not accepted yet, a
// packet socket bound to lo and a NETLINK_ROUTE socket. sock_diag is read inside the
// namespace at dump and the sockets are made in the new one at restore: the workload finds its
// data, name, connections, interface and port again and carries on, and the abstract name is
// the new namespace's, not stasis's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { compileWorkload, tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { spawnTask, waitPid } from '../../../src/sys/index.js';
import { SBIN_ENV, netnsUnavailable } from '../sockets/netns.js';
import { childOf, killTree, assertExitsZero, endTree } from './private-proc.js';

const why = netnsUnavailable([]);

/** Whether stasis's own network namespace has a listener on abstract name `name`. */
function reachableHere(name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(`\0${name}`);
    c.on('connect', () => (c.destroy(), resolve(true)));
    c.on('error', () => resolve(false));
  });
}

test('Unix, packet and netlink sockets of the tree\'s own network namespace come back in the new one, and the tree carries on', { skip: why }, async () => {
  const dir = tmpDir('netnssk');
  const name = `stasis-netnssk-${process.pid}`;
  const unshare = spawnTask(['unshare', '-n', '--fork', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', compileWorkload('netnssk'), dir, name], {
    cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` }, env: SBIN_ENV,
  });
  const ready = waitFor('netnssk ready', () => fs.existsSync(`${dir}/ready`) || waitPid(unshare, true));
  if (ready !== true) throw new Error(`netnssk did not start: ${fs.readFileSync(`${dir}/stderr.log`, 'utf8')} ${JSON.stringify(ready)}`);
  const pid = childOf(unshare)!;
  assert.equal(await reachableHere(name), false, 'the abstract name is stasis\'s namespace\'s before the dump');
  const images = tmpDir('netnssk-img');
  try {
    await dump({ pid, imagesDir: images });
  } catch (err) {
    killTree(unshare);
    waitPid(unshare);
    throw err;
  }
  waitPid(unshare);
  verifyImages(images);
  const r = await restore({ imagesDir: images, detach: true });
  try {
    assert.notEqual(fs.readlinkSync(`/proc/${r.pid}/ns/net`), fs.readlinkSync('/proc/self/ns/net'));
    assert.equal(await reachableHere(name), false, 'the abstract name was bound in stasis\'s namespace');
    fs.writeFileSync(`${dir}/go`, '');
    waitFor('the result', () => fs.existsSync(`${dir}/result`), 30000);
    assert.match(fs.readFileSync(`${dir}/result`, 'utf8'), /^PASS/);
    fs.writeFileSync(`${dir}/end`, '');
    assertExitsZero(r.pid);
  } finally {
    endTree(r.pid);
  }
});

// The pair is made again by the task SO_PEERCRED names, once the tree is made: a zombie cannot.
test('a socket pair of the tree\'s own network namespace made by a task that is now a zombie is refused at dump, naming it, and the tree carries on', { skip: why }, async () => {
  const dir = tmpDir('netns-zombie-pair');
  const unshare = spawnTask(['unshare', '-n', '--fork', compileWorkload('netns-zombie-pair'), dir], {
    cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` },
  });
  try {
    const ready = waitFor('netns-zombie-pair ready', () => fs.existsSync(`${dir}/ready`) || waitPid(unshare, true));
    assert.equal(ready, true, fs.readFileSync(`${dir}/stderr.log`, 'utf8'));
    const pid = childOf(unshare)!;
    const zombie = Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').find((p) => p && fs.readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z ')));
    assert.ok(zombie > 0, 'the pair\'s maker is not a zombie');
    await assert.rejects(dump({ pid, imagesDir: tmpDir('netns-zombie-pair-img') }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'E_UNSUPPORTED');
      assert.match(err.message, new RegExp(`SO_PEERCRED names pid ${zombie}, a zombie`));
      return true;
    });
    fs.writeFileSync(`${dir}/go`, '');
    assert.equal(waitFor('the tree', () => waitPid(unshare, true), 20000).kind, 'exited');
    assert.match(fs.readFileSync(`${dir}/result`, 'utf8'), /^PASS/);
  } finally {
    killTree(unshare);
    try {
      waitPid(unshare);
    } catch {
      /* reaped */
    }
  }
});
