// A Unix socket bound on a tmpfs of a nested mount namespace (zdtm sk-unix-mntns): a box whose
// init starts a child that unshares a mount namespace, mounts a tmpfs on /mnt and runs
// test/workloads/sockmnt.c, which binds a datagram socket to /mnt/s.sock (mode 0640) and
// connects another to it. The tmpfs archive leaves the socket file out; restore binds the
// socket again in the child's namespace: after it the file is there for the child only, a
// socket with its mode, and a datagram sent to it through the child's root reaches the
// restored socket (the workload appends it to /mnt/got).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { compileWorkload, tmpDir, waitFor } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { AF_UNIX, SOCK_DGRAM, closeFd, connectUnix, sendRaw, socket, waitPid } from '../../../src/sys/index.js';
import { childOf } from './private-proc.js';
import { boxUnavailable, cleanUp, makeBoxRoot, nestedBox, spawnBox } from './box-kit.js';

const why = boxUnavailable();

test('a Unix socket bound on a nested namespace\'s tmpfs comes back bound there, its file the child\'s only, with its mode, receiving at its path', { skip: why, timeout: 60_000 }, async () => {
  const dir = tmpDir('unixmnt');
  const root = makeBoxRoot(dir, ['bin', 'dev', 'proc', 'mnt', 'old'], ['sh', 'sleep', 'umount', 'mount', 'unshare']);
  fs.copyFileSync(compileWorkload('sockmnt', ['-static']), path.join(root, 'bin/sockmnt'));
  fs.writeFileSync(path.join(root, 'bin/child'), 'mount --make-rprivate /\nmount -t tmpfs -o size=1m,mode=755 child-tmp /mnt\nexec /bin/sockmnt\n', { mode: 0o755 });
  const script = nestedBox(root);
  const { top, ready: box } = spawnBox(dir, script, 'the child bound to /mnt/s.sock', (t) => {
    const p = childOf(t);
    const c = p === undefined ? undefined : childOf(p);
    return c !== undefined && fs.statSync(`/proc/${c}/root/mnt/s.sock`, { throwIfNoEntry: false })?.isSocket() ? { pid: p!, child: c } : undefined;
  });
  const images = tmpDir('unixmnt-img');
  let restored: number | undefined;
  try {
    await dump({ pid: box.pid, imagesDir: images, root });
    waitPid(top);
    const bound = readImage(images, 'files', undefined).find((f) => f.usk && Buffer.from(f.usk.name).toString().startsWith('/mnt/s.sock'))?.usk;
    assert.ok(bound && bound.mntId >= 0, 'the socket names the mount of its file, one of the child\'s namespace');
    const r = await restore({ imagesDir: images, detach: true, root });
    restored = r.pid;
    const child = waitFor('the restored child', () => childOf(r.pid));
    const at = `/proc/${child}/root/mnt/s.sock`;
    const st = fs.statSync(at);
    assert.ok(st.isSocket(), 'a socket file at /mnt/s.sock in the child\'s namespace');
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(fs.existsSync(`/proc/${r.pid}/root/mnt/s.sock`), false, 'not in the root\'s namespace');
    const s = socket(AF_UNIX, SOCK_DGRAM);
    try {
      connectUnix(s, Buffer.from(at));
      assert.equal(sendRaw(s, Buffer.from('ping'), 0, 4, 0), 4);
    } finally {
      closeFd(s);
    }
    waitFor('the datagram received by the restored socket', () => (fs.existsSync(`/proc/${child}/root/mnt/got`) && fs.readFileSync(`/proc/${child}/root/mnt/got`, 'utf8') === 'ping') || undefined);
  } finally {
    cleanUp(top, dir, images, restored);
  }
});
