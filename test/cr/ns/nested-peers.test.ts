// Peer groups that span a tree's mount namespaces, as zdtm's mntns_shared_bind makes them: a
// busybox box (`unshare -m -p --fork`, its root bound over itself) with a shared tmpfs on
// /shared and a private one on /priv, whose init starts a child that unshares a mount
// namespace of its own and makes its mounts shared (`unshare -m --propagation shared`; busybox's
// `unchanged` fails): the child's /shared stays a peer of the root's, its / and its copy of
// /priv are in groups of the child's own. After
// dump and restore (--root) the child is again in a namespace of its own, /shared is one peer
// group in both, and it propagates as it did: a tmpfs mounted on /shared/a in the root's
// namespace appears in the child's, one mounted on /shared/b in the child's appears in the
// root's, one mounted on /priv/a in the root's stays there. A child that made its mounts
// slaves (`--propagation slave`) comes back with its /shared a slave of the root's: a mount on
// /shared/a in the root's namespace appears in the child's, one on /shared/b in the child's
// does not appear in the root's. One that then made its /shared shared again and bound it on
// /peer (a peer group of its own, a slave of the root's) comes back so: a mount on the root's
// /shared/a appears on the child's /shared/a and /peer/a, one on the child's /peer/b on its
// /shared/b and not in the root's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { waitPid } from '../../../src/sys/index.js';
import { parseMountinfo } from '../../../src/proc/mountinfo.js';
import { childOf } from './private-proc.js';
import { type Box as KitBox, boxUnavailable, cleanUp, makeBoxRoot, spawnBox, commOf } from './box-kit.js';

const why = boxUnavailable();

interface Box extends KitBox {
  child: number;
}

const nsOf = (pid: number) => fs.readlinkSync(`/proc/${pid}/ns/mnt`);
const comm = commOf;

const mounts = (pid: number) => parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
const at = (pid: number, mp: string) => mounts(pid).find((m) => m.mountPoint === mp);
const fieldAt = (pid: number, mp: string, f: 'shared' | 'master') => {
  try {
    return at(pid, mp)?.[f];
  } catch {
    return undefined; // (not yet, or gone)
  }
};
const sharedAt = (pid: number, mp: string) => fieldAt(pid, mp, 'shared');
const masterAt = (pid: number, mp: string) => fieldAt(pid, mp, 'master');

/** The box; its child unshares with `propagation` (shared or slave; 'shared slave': slave, then /shared made shared and bound on /peer). */
type Propagation = 'shared' | 'slave' | 'shared slave';

function startBox(propagation: Propagation): Box {
  const dir = tmpDir('nestpeers');
  const root = makeBoxRoot(dir, ['bin', 'dev', 'shared', 'priv', 'peer', 'old'], ['sh', 'sleep', 'umount', 'mount', 'unshare']);
  fs.writeFileSync(path.join(root, 'bin/init'), `umount -l /old\nexec </dev/null >/dev/null 2>&1\n${propagation === 'shared slave' ? "unshare -m --propagation slave sh -c 'mount --make-shared /shared; mount --bind /shared /peer; exec sleep 1000'" : `unshare -m --propagation ${propagation} sleep 1000`} &\nexec sleep 1000\n`, { mode: 0o755 });
  const script = `
    set -e
    mount --bind ${root} ${root}
    mount -t tmpfs -o size=1m,mode=755 box-shared ${root}/shared
    mknod ${root}/dev/null c 1 3
    mkdir ${root}/shared/a ${root}/shared/b
    mount --make-shared ${root}/shared
    mount -t tmpfs -o size=1m,mode=755 box-priv ${root}/priv
    mkdir ${root}/priv/a
    cd ${root} && pivot_root . old
    exec /bin/sh /bin/init
  `;
  const { top: unshare, ready: { pid, child } } = spawnBox(dir, script, 'the box and its child in a mount namespace of its own', (top) => {
    const p = childOf(top);
    const c = p === undefined ? undefined : childOf(p);
    // (busybox runs its unshare and sleep in the shell it forked: the child's comm stays sh.)
    const made = c !== undefined && (propagation === 'shared' ? sharedAt(c, '/priv') !== undefined : propagation === 'slave' ? masterAt(c, '/shared') !== undefined : sharedAt(c, '/peer') !== undefined);
    return p !== undefined && c !== undefined && /\bsleep\b/.test(comm(p)) && made && nsOf(c) !== nsOf(p) ? { pid: p, child: c } : undefined;
  });
  return { dir, root, unshare, pid, child };
}

const sources = (pid: number) => mounts(pid).map((m) => `${m.mountPoint} ${m.source}`);

/** Runs busybox `cmd` in the mount namespace and root of `pid`; its exit status. */
function inBox(pid: number, ...cmd: string[]): number | null {
  return spawnSync('nsenter', ['-t', String(pid), '-m', '-r', '--', '/bin/busybox', ...cmd], { encoding: 'utf8' }).status;
}

/** /shared of the root (`pid`) and of the child are one peer group; /priv private in the root's, in a group of the child's own in the child's. */
function assertPeers(pid: number, child: number): void {
  const shared = at(pid, '/shared'), theirs = at(child, '/shared');
  assert.ok(shared?.shared !== undefined && theirs?.shared === shared.shared, `/shared: ${shared?.optionalFields.join(' ')} in the root's namespace, ${theirs?.optionalFields.join(' ')} in the child's`);
  assert.deepEqual(at(pid, '/priv')?.optionalFields, []);
  const priv = at(child, '/priv')?.shared;
  assert.ok(priv !== undefined && !mounts(pid).some((m) => m.shared === priv), `the child's /priv: ${at(child, '/priv')?.optionalFields.join(' ')}`);
}

/**
 * Starts the box, checks it with `check` (root pid, child), dumps it, restores it (--root) and
 * checks the restored pair the same way; then `after` (restored root, child); cleans up.
 */
async function roundTrip(propagation: Propagation, check: (pid: number, child: number) => void, after: (pid: number, child: number) => void): Promise<void> {
  const box = startBox(propagation);
  const images = tmpDir('nestpeers-img');
  let restored: number | undefined;
  try {
    check(box.pid, box.child);
    await dump({ pid: box.pid, imagesDir: images, root: box.root });
    waitPid(box.unshare);
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true, root: box.root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    assert.notEqual(nsOf(child), nsOf(r.pid));
    check(r.pid, child);
    after(r.pid, child);
  } finally {
    cleanUp(box.unshare, box.dir, images, restored);
  }
}

test('a child in a mount namespace of its own whose /shared is a peer of its parent\'s comes back so: a mount on /shared in either namespace appears in the other, one on the private /priv does not', { skip: why, timeout: 60_000 }, () =>
  roundTrip('shared', assertPeers, (pid, child) => {
    assert.equal(inBox(pid, 'mount', '-t', 'tmpfs', 'from-root', '/shared/a'), 0);
    assert.equal(inBox(child, 'mount', '-t', 'tmpfs', 'from-child', '/shared/b'), 0);
    assert.equal(inBox(pid, 'mount', '-t', 'tmpfs', 'on-priv', '/priv/a'), 0);
    for (const p of [pid, child]) {
      assert.ok(sources(p).includes('/shared/a from-root'), `${p}: ${sources(p).join(', ')}`);
      assert.ok(sources(p).includes('/shared/b from-child'), `${p}: ${sources(p).join(', ')}`);
    }
    assert.ok(sources(pid).includes('/priv/a on-priv'));
    assert.ok(!sources(child).includes('/priv/a on-priv'), `a mount on the root's private /priv reached the child: ${sources(child).join(', ')}`);
  }));

test('a child in a mount namespace of its own whose /shared is a slave of its parent\'s comes back so: a mount on the parent\'s /shared appears in the child\'s, one on the child\'s does not appear in the parent\'s', { skip: why, timeout: 60_000 }, () =>
  roundTrip('slave', (pid, child) => {
    const shared = sharedAt(pid, '/shared');
    assert.ok(shared !== undefined && masterAt(child, '/shared') === shared && sharedAt(child, '/shared') === undefined, `/shared: ${at(pid, '/shared')?.optionalFields.join(' ')} in the root's namespace, ${at(child, '/shared')?.optionalFields.join(' ')} in the child's`);
  }, (pid, child) => {
    assert.equal(inBox(pid, 'mount', '-t', 'tmpfs', 'from-root', '/shared/a'), 0);
    assert.equal(inBox(child, 'mount', '-t', 'tmpfs', 'from-child', '/shared/b'), 0);
    assert.ok(sources(child).includes('/shared/a from-root'), sources(child).join(', '));
    assert.ok(!sources(pid).includes('/shared/b from-child'), `a mount on the child's slave /shared reached the root's: ${sources(pid).join(', ')}`);
  }));

test('a child whose /shared is a slave of its parent\'s, shared again and bound on /peer, comes back so: a mount on the parent\'s /shared reaches both, one on the child\'s /peer its /shared and not the parent\'s', { skip: why, timeout: 60_000 }, () =>
  roundTrip('shared slave', (pid, child) => {
    const shared = sharedAt(pid, '/shared'), own = sharedAt(child, '/shared');
    const ok = shared !== undefined && own !== undefined && own !== shared && masterAt(child, '/shared') === shared && sharedAt(child, '/peer') === own && masterAt(child, '/peer') === shared;
    assert.ok(ok, `/shared: ${at(pid, '/shared')?.optionalFields.join(' ')} in the root's namespace; /shared ${at(child, '/shared')?.optionalFields.join(' ')}, /peer ${at(child, '/peer')?.optionalFields.join(' ')} in the child's`);
  }, (pid, child) => {
    assert.equal(inBox(pid, 'mount', '-t', 'tmpfs', 'from-root', '/shared/a'), 0);
    assert.equal(inBox(child, 'mount', '-t', 'tmpfs', 'from-child', '/peer/b'), 0);
    assert.ok(sources(child).includes('/shared/a from-root') && sources(child).includes('/peer/a from-root'), sources(child).join(', '));
    assert.ok(sources(child).includes('/shared/b from-child'), sources(child).join(', '));
    assert.ok(!sources(pid).some((l) => l.endsWith(' from-child')), `a mount on the child's /peer reached the root's: ${sources(pid).join(', ')}`);
  }));
