// The parsers against this machine's own /proc: whatever the kernel prints today must parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parseAuxv } from './auxv.js';
import { parseFdinfo } from './fdinfo.js';
import { parseLocks } from './locks.js';
import { parseMaps } from './maps.js';
import { parseMountinfo } from './mountinfo.js';
import { scanPagemap } from './pagemap.js';
import { readPagemap, readProcBuffer, readProcText, readProcTextOrNull } from './read.js';
import { parseSmaps } from './smaps.js';
import { parseStat } from './stat.js';
import { parseStatus } from './status.js';

test('readProcText() and the parsers agree on this process', () => {
  const stat = parseStat(readProcText('self', 'stat'));
  const status = parseStatus(readProcText('self', 'status'));
  assert.equal(stat.pid, process.pid);
  assert.equal(status.pid, process.pid);
  assert.equal(stat.ppid, process.ppid);
  assert.equal(status.threads, stat.numThreads);
  const maps = parseMaps(readProcText(process.pid, 'maps'));
  const smaps = parseSmaps(readProcText(process.pid, 'smaps'));
  assert.ok(maps.length > 10);
  assert.ok(smaps.length > 0 && smaps.every((v) => v.size === Number(v.end - v.start)));
  assert.ok(maps.some((m) => m.path === '[stack]'));
});

test('readProcText() parses every fd, mount and lock of this process', () => {
  for (const fd of fs.readdirSync('/proc/self/fdinfo')) {
    const text = readProcTextOrNull('self', `fdinfo/${fd}`);
    if (text !== null) assert.equal(typeof parseFdinfo(text).flags, 'number');
  }
  assert.ok(parseMountinfo(readProcText('self', 'mountinfo')).some((m) => m.mountPoint === '/'));
  assert.ok(Array.isArray(parseLocks(fs.readFileSync('/proc/locks', 'utf8'))));
  assert.ok(parseAuxv(readProcBuffer('self', 'auxv')).length >= 2);
});

test('readProcTextOrNull() gives null for a task that does not exist', () => {
  assert.equal(readProcTextOrNull(0x3fffffff, 'stat'), null);
  assert.throws(() => readProcText(0x3fffffff, 'stat'), { code: 'ENOENT' });
});

test('readPagemap() finds the pages of this process stack', () => {
  const stack = parseMaps(readProcText('self', 'maps')).find((m) => m.path === '[stack]');
  assert.ok(stack);
  const pages = Number((stack.end - stack.start) / 4096n);
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    const runs = scanPagemap(readPagemap(fd, stack.start, pages, 4096), stack.start, 4096, null);
    const top = runs[runs.length - 1];
    // The top page holds argv and the environment: always present.
    assert.equal(top && top.vaddr + BigInt(top.nrPages * 4096), stack.end);
  } finally {
    fs.closeSync(fd);
  }
});
