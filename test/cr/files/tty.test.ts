// Terminals: a pty pair inside the tree comes back as the session's controlling terminal, at
// its index, with its termios, window, lock, exclusive mode, foreground group and the bytes
// queued both ways (line ends kept); a pty whose master is outside the tree is refused
// without --shell-job; a virtual terminal is reopened with the settings it had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { getTermios, setTermios, getWinsize, setWinsize } from '../../../src/sys/index.js';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused, leaveRunningThenRestore, waitFor, tmpDir, verifyImages } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { TtyType } from '../../../src/image/gen/stasis/tty_pb.js';
import { dump, restore } from '../../../src/api/index.js';

test('a pty pair of the tree comes back as the controlling terminal, with its settings and queued bytes', async () => {
  const w = new Workload('ptys', compileWorkload('ptys')).start();
  const { images } = await checkpointRestore(w);
  const data = readImage(images, 'tty-data', undefined).map((d) => Buffer.from(d.data).toString()).sort();
  assert.deepEqual(data, ['line one\npartial', 'out\r\n']);
  const infos = readImage(images, 'tty-info', undefined);
  const slave = infos.find((i) => i.sid === w.pid);
  assert.ok(slave?.winsize && slave.winsize.wsRow === 33 && slave.locked, JSON.stringify(slave));
  // Numbered as CRIU numbers them (its restore pairs a slave with the master whose id is one more).
  const ptys = infos.filter((i) => i.pty).map((i) => [i.id, 2 * i.pty!.index + (i.rdev >> 8 === 136 ? 0 : 1)]);
  assert.ok(ptys.length >= 2 && ptys.every(([id, want]) => id === want), JSON.stringify(ptys));
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

// A VT of this machine (the tree holds it open; its settings are the device's): skipped where there is none.
const VT = '/dev/tty1';
const noVt = fs.existsSync(VT) ? false : `no ${VT} here`;
const ECHO = 0o10, ICANON = 0o2;

test('a virtual terminal comes back with the settings it had at the dump, though they were changed meanwhile', { skip: noVt }, async () => {
  // The machine's own settings, given back at the end.
  const vt = fs.openSync(VT, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  const termios = getTermios(vt), winsize = getWinsize(vt);
  try {
    const w = new Workload('vtsettings', compileWorkload('vtsettings'), [VT]).start();
    const images = tmpDir('vtsettings-img');
    await dump({ pid: w.pid, imagesDir: images });
    const info = readImage(images, 'tty-info', undefined).find((i) => i.type === TtyType.VT);
    assert.equal(info?.winsize?.wsRow, 33, JSON.stringify(info));
    assert.ok(info?.termios && info.termiosLocked, 'the VT\'s termios and locked termios, as CRIU needs them');
    // Meanwhile the device changes: the restore must give the task its settings back.
    setTermios(vt, { ...termios, lflag: termios.lflag | ECHO | ICANON });
    setWinsize(vt, { row: 10, col: 10, xpixel: 0, ypixel: 0 });
    verifyImages(images);
    const r = await restore({ imagesDir: images, detach: true });
    assert.equal(r.pid, w.pid);
    w.go();
    assertPassed(w.finish());
  } finally {
    setTermios(vt, termios);
    setWinsize(vt, winsize);
    fs.closeSync(vt);
  }
});
