// The launcher, bin/stasis.js run as a user runs it (by its own path, or through a symbolic
// link such as a `criu` for runc): it finds node on PATH and runs it without
// NODE_EXTRA_CA_CERTS, whose CA store Node 20 would otherwise read at every start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO, tmpDir } from '../harness.js';

const CLI = path.join(REPO, 'bin/stasis.js');
// A CA file that is not there: Node warns at start-up that it could not load it.
const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/stasis-test-ca.pem' };
const WARNING = /extra certs/i;

test('node itself reads NODE_EXTRA_CA_CERTS at start-up (what the launcher avoids)', () => {
  const r = spawnSync(process.execPath, ['-e', '0'], { encoding: 'utf8', env });
  assert.match(r.stderr, WARNING);
});

test('bin/stasis.js, run by its path or through a link named criu, starts node without NODE_EXTRA_CA_CERTS', () => {
  const link = path.join(tmpDir('launcher'), 'criu');
  fs.symlinkSync(CLI, link);
  for (const file of [CLI, link]) {
    const r = spawnSync(file, ['-V'], { encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\d+\.\d+/);
    assert.doesNotMatch(r.stderr, WARNING);
  }
});
