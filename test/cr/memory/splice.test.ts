// Many pages of a frozen task go into its pages file by its own vmsplice and stasis's splice
// (src/mem/page-splice.ts): after a dump that leaves it running, the task has the same maps
// and fds as before (its pipes and the injected calls' scratch are gone) and its words; a
// PROT_NONE MiB in the middle (where vmsplice stops) and a read-only area come back too; the
// pages file's CRC-32s (summed in mapped windows of the file) are checked by the restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, tmpDir, leaveRunningThenRestore } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { FileLog } from '../../../src/log.js';

test('48 MiB of a task spliced into its pages file: the task ran on unchanged, and its restore holds every word', async () => {
  const w = new Workload('splicemem', compileWorkload('splicemem')).start();
  const logFile = path.join(tmpDir('splicemem-log'), 'dump.log');
  await leaveRunningThenRestore(w, () => {
    // The path was taken: vmsplice calls of a MiB each (a pipe's size), not one read per buffer.
    const calls = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => /inject pid \d+: vmsplice\(/.test(l));
    assert.ok(calls.length >= 40, `${calls.length} vmsplice calls in the log:\n${calls.join('\n')}`);
  }, { log: new FileLog(logFile, 4) });
});

test('a damaged spliced pages file is refused at restore, by its CRC-32s', async () => {
  const w = new Workload('splicebad', compileWorkload('splicemem')).start();
  const images = tmpDir('splicebad-img');
  await dump({ pid: w.pid, imagesDir: images });
  const pages = path.join(images, 'pages-1.img');
  const fd = fs.openSync(pages, 'r+');
  const at = fs.fstatSync(fd).size - (5 << 20);
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] = (b[0] as number) ^ 0x40;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
  await assert.rejects(restore({ imagesDir: images, detach: true }), /pages-1\.img is damaged/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false);
});
