// A real interpreter, dumped mid-computation, finishes with the right output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Workload, checkpointRestore, assertPassed, REPO, sleepMs } from '../harness.js';

/** The interpreter binary itself: pyenv's python3 is a shell shim that execs it. */
function python(): string | null {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const py = python();

test('python3 dumped mid-run finishes with the right result', { skip: py ? false : 'python3 is not installed' }, async () => {
  const w = new Workload('pycount', py!, [], [path.join(REPO, 'test/workloads/pycount.py')]).start();
  sleepMs(200);
  await checkpointRestore(w);
  w.go();
  const r = w.finish(60000);
  assertPassed(r);
  assert.match(fs.readFileSync(w.file('stdout.log'), 'utf8'), /\d+/);
});
