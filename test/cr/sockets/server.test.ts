// A listening Unix socket bound to a path, with a connection it accepted already (server end
// in the parent, client end in a child): after restore the listener is bound to the same
// path with the same backlog and accepts a new client, the accepted connection keeps its
// queues, and both ends give the names they gave before (getsockname, getpeername).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, tmpDir } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { unixSockets } from '../../../src/sys/index.js';

const inoAt = (pid: number, fd: number) => Number(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))![1]);

test('a listener on a path and a connection it accepted come back: same name, backlog and queues, and it accepts a new client', async () => {
  const w = new Workload('unixserver', compileWorkload('unixserver')).start();
  const client = Number(fs.readFileSync(w.file('pids'), 'utf8').trim());
  const path = w.file('srv.sock');
  const { images } = await checkpointRestore(w);
  const usks = readImage(images, 'files', undefined).filter((f) => f.usk).map((f) => f.usk!);
  const listener = usks.find((u) => u.state === 10)!;
  assert.equal(Buffer.from(listener.name).toString(), path);
  assert.equal(listener.backlog, 7);
  assert.equal(listener.filePerms?.mode, 0o640);
  // The stale socket file the dumped listener left was replaced by the restored listener's.
  const diag = unixSockets();
  const l = diag.get(inoAt(w.pid, 7))!;
  assert.equal(l.state, 10);
  assert.equal(l.wqueue, 7, 'the listener\'s backlog');
  assert.equal(l.name.toString(), path);
  assert.equal(diag.get(inoAt(w.pid, 11))?.peer, inoAt(client, 10), 'the accepted end\'s peer is the client\'s fd 10');
  w.go();
  assertPassed(w.finish());
  // getsockname / getpeername: the listener and the accepted end are bound to the path, the client is not.
  const [before, after] = fs.readFileSync(w.file('names'), 'utf8').trim().split('\n');
  assert.equal(before, `${path}|${path}|`);
  assert.equal(after, before);
  assert.equal(fs.readFileSync(w.file('client-names-after'), 'utf8'), fs.readFileSync(w.file('client-names'), 'utf8'));
  assert.equal(fs.readFileSync(w.file('client-names'), 'utf8'), `|${path}`);
});

test('a connection accepted from a listener that has since closed comes back with its accepted end still bound to the path', async () => {
  const w = new Workload('unixserver-closed', compileWorkload('unixserver'), ['closed']).start();
  const path = w.file('srv.sock');
  const { images } = await checkpointRestore(w);
  const usks = readImage(images, 'files', undefined).filter((f) => f.usk).map((f) => f.usk!);
  assert.equal(usks.filter((u) => u.state === 10).length, 0, 'no listener in the image');
  assert.ok(fs.lstatSync(path).isSocket(), 'the stale socket file is still there');
  w.go();
  assertPassed(w.finish());
  const [before, after] = fs.readFileSync(w.file('names'), 'utf8').trim().split('\n');
  assert.equal(before, `(Bad file descriptor)|${path}|`);
  assert.equal(after, before);
  assert.equal(fs.readFileSync(w.file('client-names-after'), 'utf8'), `|${path}`);
});

test('a connection accepted from a closed listener whose path now holds another file comes back bound to the path, the file left as it is', async () => {
  const w = new Workload('unixserver-closed-taken', compileWorkload('unixserver'), ['closed']).start();
  const path = w.file('srv.sock');
  const images = tmpDir('unixserver-closed-taken-img');
  await dump({ pid: w.pid, imagesDir: images });
  fs.rmSync(path);
  fs.writeFileSync(path, 'not a socket');
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
  const [before, after] = fs.readFileSync(w.file('names'), 'utf8').trim().split('\n');
  assert.equal(before, `(Bad file descriptor)|${path}|`);
  assert.equal(after, before);
  assert.equal(fs.readFileSync(path, 'utf8'), 'not a socket');
  assert.deepEqual(fs.readdirSync(w.dir).filter((f) => f.includes('stasis')), []);
});

test('a restore whose listener path is taken by a file that is not a socket fails naming it, and leaves the file and no process', async () => {
  const w = new Workload('unixserver-taken', compileWorkload('unixserver')).start();
  const path = w.file('srv.sock');
  const images = tmpDir('unixserver-taken-img');
  await dump({ pid: w.pid, imagesDir: images });
  fs.rmSync(path);
  fs.writeFileSync(path, 'not a socket');
  await assert.rejects(restore({ imagesDir: images, detach: true }), (e: unknown) => {
    assert.ok(e instanceof StasisError, String(e));
    assert.equal(e.code, 'E_RESTORE_FAILED');
    assert.match(e.message, new RegExp(`^Cannot bind socket \\d+ to ${path}: it exists and is not a socket$`));
    return true;
  });
  assert.equal(fs.readFileSync(path, 'utf8'), 'not a socket');
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the failed restore left a process');
});

test('a listener bound to a relative name comes back bound to it from the same directory, with its accepted connection', async () => {
  const w = new Workload('unixserver-rel', compileWorkload('unixserver'), ['relative']).start();
  const { images } = await checkpointRestore(w);
  const listener = readImage(images, 'files', undefined).map((f) => f.usk).find((u) => u?.state === 10)!;
  assert.equal(Buffer.from(listener.name).toString(), 'srv.sock');
  assert.equal(listener.nameDir, w.dir);
  w.go();
  assertPassed(w.finish());
  const [before, after] = fs.readFileSync(w.file('names'), 'utf8').trim().split('\n');
  assert.equal(before, 'srv.sock|srv.sock|');
  assert.equal(after, before);
  assert.equal(fs.readFileSync(w.file('client-names-after'), 'utf8'), '|srv.sock');
});
