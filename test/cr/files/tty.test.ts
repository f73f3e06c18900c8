// Terminals: a pty pair inside the tree comes back as the session's controlling terminal, at
// its index, with its termios, window, lock, exclusive mode, foreground group and the bytes
// queued both ways (line ends kept); a pty whose master is outside the tree is refused
// without --shell-job.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused, leaveRunningThenRestore, waitFor } from '../harness.js';
import { readImage } from '../../../src/image/index.js';

test('a pty pair of the tree comes back as the controlling terminal, with its settings and queued bytes', async () => {
  const w = new Workload('ptys', compileWorkload('ptys')).start();
  const { images } = await checkpointRestore(w);
  const data = readImage(images, 'tty-data', undefined).map((d) => Buffer.from(d.data).toString()).sort();
  assert.deepEqual(data, ['line one\npartial', 'out\r\n']);
  const infos = readImage(images, 'tty-info', undefined);
  const slave = infos.find((i) => i.sid === w.pid);
  assert.ok(slave?.winsize && slave.winsize.wsRow === 33 && slave.locked, JSON.stringify(slave));
  w.go();
  assertPassed(w.finish());
});

test('a pty pair dumped with leaveRunning gets its queued bytes back at once, and the images restore it again', async () => {
  const w = new Workload('ptys-live', compileWorkload('ptys')).start();
  await leaveRunningThenRestore(w);
});

test('a pty slave whose master is outside the tree is refused without --shell-job, and keeps running', async () => {
  const w = new Workload('ptys-ext', compileWorkload('ptys'), ['ext']).start();
  const child = Number(waitFor('child pid', () => fs.existsSync(w.file('child')) && fs.readFileSync(w.file('child'), 'utf8')));
  await assertDumpRefused({ ...w, pid: child, name: 'ptys-ext-child' } as Workload, 'E_UNSUPPORTED', [/it is the terminal \/dev\/pts\/\d+, whose master is not in the tree; dump with --shell-job/]);
  w.go();
  assertPassed(w.finish());
});
