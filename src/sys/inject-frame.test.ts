import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTask } from './spawn.js';
import { waitPid } from './ptrace.js';
import { kill } from './process.js';
import { ProcMem } from './task-mem.js';
import { GadgetCache, findGadgets, readMaps } from './inject-frame.js';

/** A task's memory that counts its reads: a search reads its libc in chunks, a cache hit three gadgets. */
function countingMem(pid: number): { mem: ProcMem; reads: () => number } {
  const mem = new ProcMem(pid, false);
  let n = 0;
  const read = mem.read.bind(mem);
  mem.read = (addr, buf, off, len) => {
    n++;
    return read(addr, buf, off, len);
  };
  return { mem, reads: () => n };
}

function withTask(fn: (pid: number, file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-gadgets-'));
  const pid = spawnTask(['sleep', '100']);
  try {
    fn(pid, path.join(dir, 'sub', 'gadgets.json'));
  } finally {
    kill(pid, 9);
    waitPid(pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('GadgetCache keeps the gadgets it found in its file, and a later cache finds them there without searching', () => {
  withTask((pid, file) => {
    const maps = readMaps(pid);
    const want = findGadgets(new ProcMem(pid, false), maps);
    assert.notEqual(want.syscallRet, null);
    assert.notEqual(want.restorer, null);
    const first = countingMem(pid);
    assert.deepEqual(new GadgetCache(file).find(first.mem, maps), want);
    assert.ok(first.reads() > 3, `the first search read ${first.reads()} times`);
    assert.ok(fs.existsSync(file));
    const again = countingMem(pid);
    assert.deepEqual(new GadgetCache(file).find(again.mem, maps), want);
    assert.equal(again.reads(), 3);
  });
});

test('GadgetCache searches again past a file whose gadgets are not in the task, or that is damaged, and replaces it', () => {
  withTask((pid, file) => {
    const maps = readMaps(pid);
    const want = findGadgets(new ProcMem(pid, false), maps);
    new GadgetCache(file).find(new ProcMem(pid, false), maps);
    const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as { gadgets: Record<string, { bytes: string; rel: string }[]> };
    // Other bytes than the task's at the place kept (a libc replaced since), and another place.
    kept.gadgets.syscallRet![0]!.bytes = '0f05c2';
    kept.gadgets.restorer![0]!.rel = (BigInt(`0x${kept.gadgets.restorer![0]!.rel}`) + 1n).toString(16);
    fs.writeFileSync(file, JSON.stringify(kept));
    assert.deepEqual(new GadgetCache(file).find(new ProcMem(pid, false), maps), want);
    const after = countingMem(pid);
    assert.deepEqual(new GadgetCache(file).find(after.mem, maps), want);
    assert.equal(after.reads(), 3);
    for (const junk of ['{', '{"version":1,"gadgets":{"syscallRet":[{"path":1}],"restorer":"x"}}', '{"version":2,"gadgets":{}}']) {
      fs.writeFileSync(file, junk);
      assert.deepEqual(new GadgetCache(file).find(new ProcMem(pid, false), maps), want);
      assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).version, 1);
    }
  });
});
