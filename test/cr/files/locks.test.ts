// Advisory locks come back held: flock and OFD locks on the restored open files, POSIX
// locks by the restored process itself; a second process is refused until the owner unlocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { parseLocks } from '../../../src/proc/index.js';

function locksOn(pid: number, dir: string) {
  const inodes = new Map(['flock.dat', 'posix.dat', 'ofd.dat'].map((n) => [fs.statSync(`${dir}/${n}`, { bigint: true }).ino, n]));
  return parseLocks(fs.readFileSync('/proc/locks', 'utf8'))
    .filter((l) => !l.blocked && l.ino !== null && inodes.has(l.ino))
    .map((l) => `${inodes.get(l.ino!)} ${l.kind} ${l.type} ${l.pid === pid ? 'owner' : l.pid} ${l.start}-${l.end ?? 'EOF'}`)
    .sort();
}

test('flock, POSIX and OFD locks are held again after restore, by the same owners, and the owner can unlock', async () => {
  const w = new Workload('locks', compileWorkload('locks')).start();
  const before = locksOn(w.pid, w.dir);
  assert.equal(before.length, 4, before.join('\n'));
  const { images } = await checkpointRestore(w);
  const entries = readImage(images, 'file-locks', undefined);
  assert.deepEqual(entries.map((e) => `${e.flag}/${e.type} fd ${e.fd} ${e.start}+${e.len}`).sort(),
    ['1/0 fd 11 100+0', '1/1 fd 11 10+20', '2/1 fd 10 0+0', '4/1 fd 12 0+100']);
  assert.deepEqual(locksOn(w.pid, w.dir), before);
  w.go();
  assertPassed(w.finish());
});
