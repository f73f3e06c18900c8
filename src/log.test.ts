import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileLog } from './log.js';

test('a FileLog empties its file first, as CRIU does with -o: a second run\'s log holds that run only, stamped, at its level', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-log-'));
  try {
    const file = path.join(dir, 'dump.log');
    fs.writeFileSync(file, '(00.000001) Error: from the run before\n'.repeat(50));
    const log = new FileLog(file, 3);
    log.info('this run');
    log.debug('not at level 3');
    log.error('it failed');
    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /^\(\d{2}\.\d{6}\) this run$/);
    assert.match(lines[1]!, /^\(\d{2}\.\d{6}\) Error: it failed$/);
    assert.equal(fs.statSync(file).mode & 0o777, 0o644); // an existing file keeps its mode
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
