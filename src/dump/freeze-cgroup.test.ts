import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkFreezeCgroup } from './freeze-cgroup.js';
import { StasisError } from '../errors.js';

test('checkFreezeCgroup() takes a cgroup holding the tree alone, and refuses one holding a process outside it, naming the pid', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-freeze-cg-'));
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), '812\n813\n');
    checkFreezeCgroup(dir, [812, 813]);
    assert.throws(() => checkFreezeCgroup(dir, [812]), (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && /holds pid\(s\) 813, which are not in the tree/.test(e.message));
    assert.throws(() => checkFreezeCgroup(path.join(dir, 'gone'), [812]), (e: unknown) => e instanceof StasisError && /Cannot freeze through cgroup/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
