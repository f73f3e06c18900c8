// Many pages of a frozen task go into its pages file with one copy: written by the task's own
// injected pwritev (src/mem/task-write.ts), or, where the task may not write them itself
// (another memory cgroup than stasis's, a file size limit below them), by its vmsplice and
// stasis's splice (src/mem/page-splice.ts). After a dump that leaves it running, the task has
// the same maps and fds as before (the pages file's fd, its pipes and the injected calls'
// scratch are gone) and its words; a PROT_NONE MiB in the middle (where both stop) and a
// read-only area come back too; the pages file's CRC-32s (summed in mapped windows of the
// file) are checked by the restore.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Workload, compileWorkload, tmpDir, leaveRunningThenRestore } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { FileLog } from '../../../src/log.js';
import { getRlimit, setRlimit } from '../../../src/sys/index.js';
import { removeCgroups } from '../containers/cgroup2.js';

const RLIMIT_FSIZE = 1;

/** The injected calls of each kind the dump's log shows. */
function injected(logFile: string): { pwritev: number; vmsplice: number } {
  const lines = fs.readFileSync(logFile, 'utf8').split('\n');
  const count = (name: string) => lines.filter((l) => new RegExp(`inject pid \\d+: ${name}\\(`).test(l)).length;
  return { pwritev: count('pwritev'), vmsplice: count('vmsplice') };
}

/** Dumps `w` leaving it running, restores it; returns the injected calls its pages took. */
async function roundTrip(w: Workload): Promise<{ pwritev: number; vmsplice: number }> {
  const logFile = path.join(tmpDir(`${w.name}-log`), 'dump.log');
  let calls = { pwritev: 0, vmsplice: 0 };
  await leaveRunningThenRestore(w, () => {
    calls = injected(logFile);
  }, { log: new FileLog(logFile, 4) });
  return calls;
}

test('48 MiB of a task written into its pages file by the task itself: the task ran on unchanged, and its restore holds every word', async () => {
  const calls = await roundTrip(new Workload('taskwrite', compileWorkload('splicemem')).start());
  // The path was taken: a few calls of up to 16 MiB each, not one per MiB of pipe.
  assert.ok(calls.pwritev >= 3 && calls.pwritev <= 8, `${calls.pwritev} pwritev calls`);
  assert.equal(calls.vmsplice, 0);
});

test('a task whose RLIMIT_FSIZE is below its pages does not write them (SIGXFSZ would kill it): they are spliced, and it runs on', async () => {
  const w = new Workload('splicefsize', compileWorkload('splicemem')).start();
  const lim = { cur: 4n << 20n, max: getRlimit(w.pid, RLIMIT_FSIZE).max };
  setRlimit(w.pid, RLIMIT_FSIZE, lim);
  const calls = await roundTrip(w);
  assert.equal(calls.pwritev, 0);
  assert.ok(calls.vmsplice >= 40, `${calls.vmsplice} vmsplice calls`);
});

/** A memory cgroup below this process's own (cgroup v1's memory hierarchy, or v2), or why there is none. */
function childMemoryCgroup(name: string): string {
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').map((l) => l.split(':'));
  const v1 = own.find((f) => f[1]?.split(',').includes('memory'));
  const v2 = own.find((f) => f[0] === '0' && f[1] === '');
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f[3] !== '/') continue;
    const memV1 = v1 && f[sep + 1] === 'cgroup' && f[sep + 3]?.split(',').includes('memory');
    const memV2 = !v1 && v2 && f[sep + 1] === 'cgroup2';
    if (!memV1 && !memV2) continue;
    const dir = path.join(f[4]!, (memV1 ? v1 : v2)![2]!, name);
    try {
      fs.mkdirSync(dir);
      return dir;
    } catch (e) {
      throw new Error(`Cannot make the memory cgroup ${dir}: ${(e as Error).message}`);
    }
  }
  throw new Error('no memory cgroup hierarchy mounted');
}

const CG = `stasis-test-splice-${process.pid}`;
let cgDir: string | undefined;
after(() => {
  if (cgDir) removeCgroups(cgDir);
});

test('a task in a memory cgroup other than stasis\'s does not write its pages (the page cache would be charged to it): they are spliced', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root');
  const w = new Workload('splicecg', compileWorkload('splicemem')).start();
  try {
    cgDir = childMemoryCgroup(CG);
    fs.writeFileSync(path.join(cgDir, 'cgroup.procs'), String(w.pid));
  } catch (e) {
    w.kill();
    return t.skip((e as Error).message);
  }
  const calls = await roundTrip(w);
  assert.equal(calls.pwritev, 0);
  assert.ok(calls.vmsplice >= 40, `${calls.vmsplice} vmsplice calls`);
});

test('a damaged pages file is refused at restore, by its CRC-32s', async () => {
  const w = new Workload('splicebad', compileWorkload('splicemem')).start();
  const images = tmpDir('splicebad-img');
  await dump({ pid: w.pid, imagesDir: images });
  const pages = path.join(images, 'pages-1.img');
  const fd = fs.openSync(pages, 'r+');
  const at = fs.fstatSync(fd).size - (5 << 20);
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] = (b[0] as number) ^ 0x40;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
  await assert.rejects(restore({ imagesDir: images, detach: true }), /pages-1\.img is damaged/);
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false);
});
