// --inherit-fd both ways with CRIU 4.2's own binary: a counter writing to a pipe the test reads,
// dumped by one tool and restored by the other with a new pipe for its stdout; the test reads
// every line once (CRIU's rule, kept by both: the old pipe's unread lines stay in it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, assertPassed, tmpDir } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { closeFd, setChildSubreaper } from '../../../src/sys/index.js';
import { criu, criuWorks, reapDumped } from './criu-tool.js';
import { newPipe, assertCounts, finalCount } from '../pipes/pipe-reader.js';

const skip = criuWorks();
if (!skip) setChildSubreaper();

function start(name: string, setsid: boolean): { w: Workload; key: string; old: ReturnType<typeof newPipe> } {
  const old = newPipe();
  const w = new Workload(name, compileWorkload('stdout-counter')).start({ setsid, stdout: { fd: old.write } });
  closeFd(old.write);
  return { w, key: fs.readlinkSync(`/proc/${w.pid}/fd/1`), old };
}

test('CRIU 4.2 restores stasis\'s images of a pipe taken as external, with --inherit-fd fd[3]:pipe:[ID]', { skip }, async () => {
  const { w, key, old } = start('inherit-to-criu', false);
  const images = tmpDir('inherit-to-criu-img');
  await dump({ pid: w.pid, imagesDir: images, shellJob: true, externalPipes: [key] });
  const before = await old.reader.untilEof();
  const next = newPipe();
  next.reader.start();
  criu(['restore', '-d', '-j', '--inherit-fd', `fd[3]:${key}`], images, 'restore.log', [next.write]);
  closeFd(next.write);
  w.go();
  const r = w.finish();
  assertPassed(r);
  assertCounts(before + await next.reader.untilEof(), finalCount(r.result));
});

test('stasis restores CRIU 4.2\'s images of a pipe to a process outside the tree, with inheritFds', { skip }, async () => {
  const { w, key, old } = start('inherit-from-criu', true);
  const images = tmpDir('inherit-from-criu-img');
  criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
  reapDumped(images);
  const before = await old.reader.untilEof();
  // CRIU's images do not say the pipe was external: a restore without the pipe is not refused.
  assert.equal(fs.existsSync(`${images}/stasis-external.json`), false);
  const next = newPipe();
  next.reader.start();
  await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true, inheritFds: [{ fd: next.write, key }] });
  closeFd(next.write);
  w.go();
  const r = w.finish();
  assertPassed(r);
  assertCounts(before + await next.reader.untilEof(), finalCount(r.result));
});
