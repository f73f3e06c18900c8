import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from './args.js';
import { dumpOptions, restoreOptions } from './build-options.js';
import { StasisError } from '../errors.js';
import { NO_LOG } from '../log.js';

const io = { log: NO_LOG };
const restoreWith = (...extra: string[]) => restoreOptions(parseArgs(['restore', '-D', 'img', ...extra]), io);

test('restoreOptions() takes --inherit-fd fd[N]:KEY in CRIU\'s form, keys with colons and brackets included', () => {
  const o = restoreWith('--inherit-fd', 'fd[1]:pipe:[563348]', '--inherit-fd=fd[7]:var/log/a:b.log');
  assert.deepEqual(o.inheritFds, [{ fd: 1, key: 'pipe:[563348]' }, { fd: 7, key: 'var/log/a:b.log' }]);
  assert.equal(restoreWith().inheritFds, undefined);
  for (const bad of ['1:pipe:[1]', 'fd[x]:k', 'fd[1]', 'fd[1]:']) {
    assert.throws(() => restoreWith('--inherit-fd', bad), (e: unknown) => e instanceof StasisError && e.code === 'E_BAD_ARGS' && /expected fd\[N\]:KEY/.test(e.message), bad);
  }
});

test('restoreOptions() writes the text of --inherit-fd debug[N]:TEXT to fd N at once, as CRIU does', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-inh-')), 'out');
  const fd = fs.openSync(file, 'w');
  try {
    assert.equal(restoreWith('--inherit-fd', `debug[${fd}]:restored here\n`).inheritFds, undefined);
  } finally {
    fs.closeSync(fd);
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'restored here\n');
  fs.rmSync(path.dirname(file), { recursive: true });
});

test('--external pipe:[ID] names a pipe at dump; at restore it is refused, pointing at --inherit-fd', () => {
  const d = dumpOptions(parseArgs(['dump', '-t', '42', '-D', 'img', '--external', 'pipe:[99]', '--external', 'veth[eth0]:h0']), io);
  assert.deepEqual(d.externalPipes, ['pipe:[99]']);
  assert.throws(() => restoreWith('--external', 'pipe:[99]'), (e: unknown) => e instanceof StasisError && /--inherit-fd fd\[N\]:pipe:\[99\]/.test(e.message));
});

test('--external mnt[KEY]:VAL is --ext-mount-map KEY:VAL, and mnt[] (:s, :m) is --ext-mount-map auto, as CRIU takes them', () => {
  const d = dumpOptions(parseArgs(['dump', '-t', '42', '-D', 'img', '--external', 'mnt[/zdtm/a.test]:ZDTM', '-M', '/b:B', '--external', 'mnt[]:s']), io);
  assert.deepEqual([...d.extMounts!], [['/b', 'B'], ['/zdtm/a.test', 'ZDTM']]);
  assert.deepEqual(d.extAuto, { sharing: true, masters: false });
  const m = dumpOptions(parseArgs(['dump', '-t', '42', '-D', 'img', '--ext-mount-map', 'auto', '--enable-external-masters']), io);
  assert.equal(m.extMounts, undefined);
  assert.deepEqual(m.extAuto, { sharing: false, masters: true });
  assert.equal(dumpOptions(parseArgs(['dump', '-t', '42', '-D', 'img']), io).extAuto, undefined);
  const r = restoreWith('--external', 'mnt[ZDTM]:/tmp/x:y', '--external', 'mnt[]');
  assert.deepEqual([...r.extMounts!], [['ZDTM', '/tmp/x:y']]);
  assert.equal(r.extAuto, true);
  for (const bad of ['mnt[/a]', 'mnt[/a]:', 'mnt[]:x']) assert.throws(() => restoreWith('--external', bad), (e: unknown) => e instanceof StasisError && e.code === 'E_BAD_ARGS', bad);
});

test('--external dev[MAJOR/MINOR]:KEY names a device\'s filesystem at dump, dev[KEY]:DEVICE gives the device at restore, as CRIU takes them', () => {
  const d = dumpOptions(parseArgs(['dump', '-t', '42', '-D', 'img', '--external', 'dev[7/0]:loop', '--external', 'mnt[/a]:A']), io);
  assert.deepEqual([...d.extDevs!], [['7/0', 'loop']]);
  assert.deepEqual([...d.extMounts!], [['/a', 'A']]);
  assert.deepEqual([...restoreWith('--external', 'dev[loop]:/dev/loop0').extDevs!], [['loop', '/dev/loop0']]);
  assert.throws(() => dumpOptions(parseArgs(['dump', '-t', '42', '-D', 'img', '--external', 'dev[loop]:x']), io), (e: unknown) => e instanceof StasisError && e.code === 'E_BAD_ARGS' && /dev\[MAJOR\/MINOR\]:KEY/.test(e.message));
  assert.throws(() => restoreWith('--external', 'dev[loop]'), (e: unknown) => e instanceof StasisError && e.code === 'E_BAD_ARGS');
});
