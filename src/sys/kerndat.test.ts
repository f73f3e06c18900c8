import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kernelFeatures, probeKernel, saveKernelFeatures } from './kerndat.js';

const bootId = () => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

test('kernelFeatures() probes once per boot: later calls read what the probe kept, the same features', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-kdat-'));
  try {
    const file = path.join(dir, 'sub', 'kdat.json');
    const probed = probeKernel();
    const first = kernelFeatures(file);
    assert.deepEqual(first, probed);
    const kept = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(kept.bootId, bootId());
    assert.equal(kept.zeroPfn, probed.zeroPfn === null ? null : String(probed.zeroPfn));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    // What the file says is what a later call returns: it did not probe again.
    fs.writeFileSync(file, JSON.stringify({ ...kept, timerRestoreIds: !probed.timerRestoreIds }));
    assert.equal(kernelFeatures(file).timerRestoreIds, !probed.timerRestoreIds);
    assert.deepEqual({ ...kernelFeatures(file), timerRestoreIds: probed.timerRestoreIds }, probed);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a kept probe of another boot, kernel or user, or a damaged one, is probed again and replaced', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-kdat-'));
  try {
    const file = path.join(dir, 'kdat.json');
    const probed = probeKernel();
    saveKernelFeatures(probed, file);
    const good = JSON.parse(fs.readFileSync(file, 'utf8'));
    const lies = { ...good, kcmp: !probed.kcmp };
    for (const bad of [
      JSON.stringify({ ...lies, bootId: '00000000-0000-0000-0000-000000000000' }),
      JSON.stringify({ ...lies, release: '2.6.32' }),
      JSON.stringify({ ...lies, euid: good.euid + 1 }),
      JSON.stringify({ ...lies, version: 99 }),
      JSON.stringify({ ...lies, zeroPfn: 'x' }),
      JSON.stringify({ ...lies, lazyPages: 'yes' }),
      JSON.stringify(lies).slice(0, 40),
      '',
    ]) {
      fs.writeFileSync(file, bad);
      assert.deepEqual(kernelFeatures(file), probed, bad);
      assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), good, bad);
    }
    // A place it cannot be written: probed each time, no error.
    const blocked = path.join(dir, 'kdat.json', 'x');
    assert.deepEqual(kernelFeatures(blocked), probed);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
