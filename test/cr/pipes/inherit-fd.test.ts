// A tree whose stdio is a pipe to a process outside it (a shell's `tree | cat`, a container's
// stdout read by its runtime). Dumped as it is, it is refused: a restore would make the pipe
// anew, with nobody on the other end. Dumped with --external pipe:[ID] and restored with
// --inherit-fd fd[N]:pipe:[ID], it writes on into the pipe the restorer gives it, and its
// reader sees every line once: what was left unread in the old pipe is read from the old
// pipe, and not written again into the new one (CRIU's rule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, assertPassed, assertDumpRefused, tmpDir, verifyImages, sleepMs } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { pipe2, closeFd, pipeQueued } from '../../../src/sys/index.js';
import { newPipe, assertCounts, finalCount } from './pipe-reader.js';

const O_CLOEXEC = 0o2000000;

test('a pipe read outside the tree fails the dump, naming it and how to give it back; the tree writes on', async () => {
  const out = newPipe();
  const w = new Workload('inherit-refused', compileWorkload('stdout-counter')).start({ stdout: { fd: out.write } });
  closeFd(out.write);
  out.reader.start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [
    new RegExp(`^Cannot dump fd 1 of pid ${w.pid}: pipe:\\[\\d+\\] is read by a process outside the tree`),
    /would write into a new pipe that nobody reads/, /dump with --external pipe:\[(\d+)\] and restore with --inherit-fd fd\[N\]:pipe:\[\1\]/,
  ]);
  w.go();
  const r = w.finish();
  assertPassed(r);
  assertCounts(await out.reader.untilEof(), finalCount(r.result));
});

test('a pipe written outside the tree (its stdin) fails the dump the same way', async () => {
  const [r, wr] = pipe2(O_CLOEXEC);
  const out = newPipe();
  const w = new Workload('inherit-stdin', compileWorkload('stdout-counter')).start({ stdin: { fd: r }, stdout: { fd: out.write } });
  closeFd(r);
  closeFd(out.write);
  out.reader.start();
  try {
    await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`^Cannot dump fd 0 of pid ${w.pid}: pipe:\\[\\d+\\] is written by a process outside the tree`), /read a new pipe that nobody writes/]);
  } finally {
    closeFd(wr);
  }
  // Its stdout is outside too, and named as well once stdin is not in the way.
  w.go();
  assertPassed(w.finish());
  await out.reader.untilEof();
});

test('--external pipe:[ID] at dump and --inherit-fd at restore: the counter goes on in the new pipe, no line lost or repeated', async () => {
  const old = newPipe();
  const w = new Workload('inherit-pipe', compileWorkload('stdout-counter')).start({ stdout: { fd: old.write } });
  closeFd(old.write);
  const key = `pipe:[${fs.statSync(`/proc/${w.pid}/fd/1`).ino}]`;
  assert.equal(fs.readlinkSync(`/proc/${w.pid}/fd/1`), key);
  // Unread lines in the old pipe at the dump: its reader reads them there, they are not written again.
  sleepMs(30);
  const images = tmpDir('inherit-pipe-img');
  await dump({ pid: w.pid, imagesDir: images, externalPipes: [key] });
  verifyImages(images);
  const inFlight = readImage(images, 'pipes-data', undefined);
  assert.equal(inFlight.length, 1);
  assert.ok(inFlight[0]!.entry.bytes > 0 && inFlight[0]!.entry.bytes === pipeQueued(old.reader.fd), 'the unread lines were not in the images');
  const before = await old.reader.untilEof(); // the dumped task is gone: its end is closed

  const next = newPipe();
  next.reader.start();
  await restore({ imagesDir: images, detach: true, inheritFds: [{ fd: next.write, key }] });
  closeFd(next.write);
  assert.equal(fs.readlinkSync(`/proc/${w.pid}/fd/1`), `pipe:[${fs.fstatSync(next.reader.fd).ino}]`);
  w.go();
  const r = w.finish();
  assertPassed(r);
  const after = await next.reader.untilEof();
  assert.ok(after.length > 0 && before.length > 0);
  assertCounts(before + after, finalCount(r.result));
});

test('--inherit-fd takes the read end of the new pipe as well (the end is reopened with the image\'s mode); a missing fd or a fd that is no pipe fails the restore', async () => {
  const old = newPipe();
  const w = new Workload('inherit-read-end', compileWorkload('stdout-counter')).start({ stdout: { fd: old.write } });
  closeFd(old.write);
  old.reader.start();
  const key = `pipe:[${fs.statSync(`/proc/${w.pid}/fd/1`).ino}]`;
  const images = tmpDir('inherit-read-end-img');
  await dump({ pid: w.pid, imagesDir: images, externalPipes: [key] });
  const before = await old.reader.untilEof();

  // The dump took the pipe as external: a restore that does not give it is refused, naming it.
  await assert.rejects(restore({ imagesDir: images, detach: true }),
    (e: Error) => e.message === `Cannot restore ${key}: its other end was outside the tree, and the dump took it as external; give the tree a pipe for it with --inherit-fd fd[N]:${key} (over RPC, inherit_fd)`);
  assert.deepEqual(JSON.parse(fs.readFileSync(`${images}/stasis-external.json`, 'utf8')), { pipes: [key] });
  const [closed] = pipe2(O_CLOEXEC);
  closeFd(closed);
  await assert.rejects(restore({ imagesDir: images, detach: true, inheritFds: [{ fd: closed, key }] }),
    (e: Error) => /fd \d+ is not open in the restoring process/.test(e.message));
  const notPipe = fs.openSync('/dev/null', 'w');
  await assert.rejects(restore({ imagesDir: images, detach: true, inheritFds: [{ fd: notPipe, key }] }),
    (e: Error) => new RegExp(`Cannot give pipe:\\[\\d+\\] \\(file \\d+\\) fd ${notPipe} of --inherit-fd: it is not a pipe`).test(e.message));
  fs.closeSync(notPipe);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a failed restore left the task behind');

  const next = newPipe();
  next.reader.start();
  await restore({ imagesDir: images, detach: true, inheritFds: [{ fd: next.reader.fd, key }] });
  closeFd(next.write);
  const flags = parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/${w.pid}/fdinfo/1`, 'utf8'))![1]!, 8);
  assert.equal(flags & 3, 1, `fd 1 has flags 0${flags.toString(8)}, not a write end`);
  w.go();
  const r = w.finish();
  assertPassed(r);
  assertCounts(before + await next.reader.untilEof(), finalCount(r.result));
});
