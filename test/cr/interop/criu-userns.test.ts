// CRIU's images of a tree in a user namespace of its own, whose maps of several ranges its
// parent wrote (setgroups left allowed, which CRIU's UsernsEntry cannot say otherwise): stasis
// restores what CRIU 4.2 dumped (userns-N.img, the credentials in the namespace's view), and the
// restored tree checks its maps, ids, capabilities and files as after a stasis round trip.
// The other way is skipped: CRIU 4.2 cannot restore such a tree here, its own dump included
// (without a mount namespace of the tree's, its restore fails to open /proc inside the user
// namespace: EPERM); STASIS_INTEROP_CONTROL=1 runs it. Without CRIU's binary both are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { compileWorkload, tmpDir, waitFor, verifyImages, sleepMs } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { spawnTask, waitPid, setChildSubreaper } from '../../../src/sys/index.js';
import { criu, criuWorks, reapDumped } from './criu-tool.js';

const skip = criuWorks();
if (!skip) setChildSubreaper();
const CRIU_LOSES = 'CRIU 4.2 cannot restore a tree in a user namespace without a mount namespace of its own on this machine (its restore fails opening /proc: EPERM), its own dump included';
const UIDS = '0 100000 1000\n1000 200000 10\n', GIDS = '0 100000 1000\n1000 300000 5\n';

/** nsroot in a user namespace it makes, its maps written here, leading its own session. */
function start(name: string): { pid: number; dir: string } {
  const dir = tmpDir(name);
  fs.chmodSync(dir, 0o777);
  const pid = spawnTask([compileWorkload('nsroot'), dir, 'usermap,setsid'], {
    cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` },
  });
  waitFor('its user namespace', () => fs.existsSync(`${dir}/unshared`) || waitPid(pid, true));
  fs.writeFileSync(`/proc/${pid}/uid_map`, UIDS);
  fs.writeFileSync(`/proc/${pid}/gid_map`, GIDS);
  const ready = waitFor('nsroot ready', () => fs.existsSync(`${dir}/ready`) || waitPid(pid, true));
  if (ready !== true) throw new Error(`nsroot did not start: ${fs.readFileSync(`${dir}/stderr.log`, 'utf8')} ${JSON.stringify(ready)}`);
  return { pid, dir };
}

/** Lets the restored tree check itself; it must pass, with the same maps. */
function finish(pid: number, dir: string): void {
  const map = (f: string) => fs.readFileSync(`/proc/${pid}/${f}`, 'utf8').split('\n').map((l) => l.trim().split(/\s+/).join(' ')).filter(Boolean).join('\n') + '\n';
  assert.equal(map('uid_map'), UIDS);
  assert.equal(map('gid_map'), GIDS);
  fs.writeFileSync(`${dir}/go`, '');
  const until = Date.now() + 20000;
  let st: ReturnType<typeof waitPid> = null;
  while (!(st = waitPid(pid, true)) && Date.now() < until) sleepMs(5);
  const result = fs.existsSync(`${dir}/result`) ? fs.readFileSync(`${dir}/result`, 'utf8') : 'no result';
  assert.deepEqual(st && { kind: st.kind, code: 'code' in st ? st.code : undefined }, { kind: 'exited', code: 0 }, result);
  assert.match(result, /^PASS/);
  assert.equal(fs.statSync(`${dir}/owned-after`).uid, 100000, 'the restored root made its file as another uid');
}

test('stasis restores CRIU 4.2\'s images of a tree in a user namespace of its own with maps of several ranges', { skip }, async () => {
  const w = start('userns-from-criu');
  const images = tmpDir('userns-from-criu-img');
  criu(['dump', '-t', String(w.pid), '--file-locks'], images, 'dump.log');
  reapDumped(images);
  assert.ok(fs.readdirSync(images).some((f) => /^userns-\d+\.img$/.test(f)), fs.readdirSync(images).join(' '));
  // CRIU writes the credentials as the tasks see them: uid 0 of the namespace, not 100000.
  assert.equal(readImage(images, 'core', w.pid)[0]?.threadCore?.creds?.uid, 0);
  const r = await restore({ imagesDir: images, detach: true, noVerify: true });
  assert.equal(r.pid, w.pid);
  finish(r.pid, w.dir);
});

test('CRIU 4.2 restores stasis\'s images of a tree in a user namespace of its own', { skip: skip || (process.env.STASIS_INTEROP_CONTROL !== '1' && CRIU_LOSES) }, async () => {
  const w = start('userns-to-criu');
  const images = tmpDir('userns-to-criu-img');
  await dump({ pid: w.pid, imagesDir: images });
  reapDumped(images);
  verifyImages(images);
  criu(['restore', '-d', '--file-locks'], images, 'restore.log');
  finish(w.pid, w.dir);
});
