// A task whose executable is the restore stub's own program (sleep): PR_SET_MM_MAP refused
// to give it back its exe while the stub's file was still mapped (EBUSY), so a shell script
// waiting in `sleep` could not be restored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpDir, sleepMs } from '../harness.js';
import { spawnTask, resolveExecutable, kill, waitPid } from '../../../src/sys/index.js';
import { dump, restore } from '../../../src/api/index.js';

test('a dumped sleep restores with its executable and its arguments, asleep again', async () => {
  const exe = fs.realpathSync(resolveExecutable('sleep'));
  const pid = spawnTask([exe, '1000'], { stdin: { path: '/dev/null' }, stdout: { path: '/dev/null' }, stderr: { path: '/dev/null' } });
  try {
    sleepMs(50);
    const images = tmpDir('sleep-img');
    await dump({ pid, imagesDir: images });
    const r = await restore({ imagesDir: images, detach: true });
    assert.equal(r.pid, pid);
    assert.equal(fs.readlinkSync(`/proc/${pid}/exe`), exe);
    assert.equal(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), `${exe}\x001000\x00`);
    sleepMs(100);
    assert.match(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) S /, 'the restored sleep is not asleep');
  } finally {
    kill(pid, 9);
    waitPid(pid, true);
  }
});
