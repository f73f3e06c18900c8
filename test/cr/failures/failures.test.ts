// Bad input and failures: a clear error, a non-zero exit, and nothing lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Workload, compileWorkload, assertPassed, tmpDir, REPO, verifyImages, assertDumpRefused } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';

const CLI = path.join(REPO, 'bin/stasis.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

function freePid(): number {
  const max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  for (let p = max - 1000; ; p--) if (!fs.existsSync(`/proc/${p}`)) return p;
}

test('dumping a pid that does not exist fails with E_NO_PROCESS and exit 1', () => {
  const r = cli('dump', '-t', String(freePid()), '-D', tmpDir('nopid'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no such process \[E_NO_PROCESS\]/);
});

test('bad arguments exit 2 with a usage hint', () => {
  const r = cli('dump', '-D', tmpDir('noargs'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /E_BAD_ARGS/);
});

test('an unsupported fd kind fails the dump, names pid, fd and kind, and leaves the task running', async () => {
  const w = new Workload('iouring', compileWorkload('iouring')).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`fd \\d+ of pid ${w.pid}: it is an io_uring instance \\(anon_inode:\\[io_uring\\]\\); its rings, the requests in flight and the files and buffers registered with it live in the kernel`)]);
  w.go();
  assertPassed(w.finish());
});

test('a seccomp filter that hands syscalls to a user-space listener is refused, and the task keeps its filter', async () => {
  const w = new Workload('seccomp-notify', compileWorkload('seccomp-notify')).start();
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`thread ${w.pid} of pid ${w.pid}: a seccomp filter of it returns SECCOMP_RET_USER_NOTIF`)]);
  w.go();
  assertPassed(w.finish());
});

test('a tree with one task that cannot be dumped fails as a whole, and every task keeps running untraced', async () => {
  const w = new Workload('forker', compileWorkload('forker')).start();
  const child = Number(fs.readFileSync(w.file('child'), 'utf8'));
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`of pid ${child}:`)], [w.pid, child]);
  w.go();
  assertPassed(w.finish());
});

test('restoring while the pid is taken fails with E_PID_TAKEN and creates nothing', async () => {
  const w = new Workload('counter', compileWorkload('counter')).start();
  const images = tmpDir('taken-img');
  await dump({ pid: w.pid, imagesDir: images, leaveRunning: true });
  verifyImages(images);
  const children = () => fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  const before = children();
  await assert.rejects(restore({ imagesDir: images }), (e: unknown) => e instanceof StasisError && e.code === 'E_PID_TAKEN');
  assert.deepEqual(children(), before);
  const r = cli('restore', '-D', images);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /another process has it \[E_PID_TAKEN\]/);
  w.go();
  assertPassed(w.finish());
});

test('truncated or corrupt images fail the restore cleanly and leave no process', async () => {
  const w = new Workload('bigheap', compileWorkload('bigheap'), ['4']).start();
  const images = tmpDir('trunc-img');
  await dump({ pid: w.pid, imagesDir: images });
  const copy = (name: string) => {
    const d = tmpDir(name);
    for (const f of fs.readdirSync(images)) fs.copyFileSync(path.join(images, f), path.join(d, f));
    return d;
  };
  // Each damage is caught by the checksums before anything is read; with --no-verify, by
  // the decoder or the restore itself (the codes after the checksums' own).
  const cases: [string, (d: string) => void, RegExp, RegExp][] = [
    ['pages cut short', (d) => fs.truncateSync(path.join(d, 'pages-1.img'), 4096 * 3), /E_TRUNCATED/, /E_TRUNCATED/],
    ['core cut short', (d) => {
      const f = path.join(d, `core-${w.pid}.img`);
      fs.truncateSync(f, fs.statSync(f).size - 7);
    }, /E_TRUNCATED/, /E_TRUNCATED|E_CORRUPT/],
    ['mm magic overwritten', (d) => {
      const f = path.join(d, `mm-${w.pid}.img`);
      const b = fs.readFileSync(f);
      b.writeUInt32LE(0xdeadbeef, 4);
      fs.writeFileSync(f, b);
    }, /E_CORRUPT/, /E_BAD_MAGIC/],
    ['no inventory', (d) => fs.rmSync(path.join(d, 'inventory.img')), /E_NO_IMAGE/, /E_NO_IMAGE/],
    ['a mapped file gone', (d) => {
      // The exe of the image renamed away: the task is created, then the restore fails.
      const files = path.join(d, 'files.img');
      const b = fs.readFileSync(files);
      const exe = Buffer.from(w.binary);
      const at = b.indexOf(exe);
      assert.ok(at > 0);
      Buffer.from(w.binary.replace(/.$/, 'X')).copy(b, at);
      fs.writeFileSync(files, b);
    }, /E_CORRUPT/, /E_RESTORE_FAILED/],
    ['a NUL and an escape in the exe path', (d) => {
      const files = path.join(d, 'files.img');
      const b = fs.readFileSync(files);
      const at = b.indexOf(Buffer.from(w.binary));
      b[at + 1] = 0;
      b[at + 2] = 0x1b;
      fs.writeFileSync(files, b);
    }, /E_CORRUPT/, /\\u0000\\u001b.*E_CORRUPT/],
  ];
  for (const [what, damage, verified, unverified] of cases) {
    const d = copy('damaged');
    damage(d);
    for (const [args, code] of [[[], verified], [['--no-verify'], unverified]] as const) {
      const r = cli('restore', '-D', d, ...args);
      assert.notEqual(r.status, 0, what);
      assert.match(r.stderr, code, `${what} ${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /[\x00-\x09\x0b-\x1f]/, `${what}: raw control bytes in the message`);
      assert.equal(fs.existsSync(`/proc/${w.pid}`), false, `${what}: a process was left behind`);
    }
  }
  // One flipped bit of memory: only the checksums can tell (the restore would be silently wrong).
  const d = copy('flipped');
  const pages = fs.readFileSync(path.join(d, 'pages-1.img'));
  pages[pages.length >> 1]! ^= 4;
  fs.writeFileSync(path.join(d, 'pages-1.img'), pages);
  const flipped = cli('restore', '-D', d);
  const MiB = 1 << 20, at = Math.floor((pages.length >> 1) / MiB) * MiB;
  assert.match(flipped.stderr, new RegExp(`pages-1\\.img is damaged: its CRC-32 of bytes ${at}-${Math.min(at + MiB, pages.length)} differs.*E_CORRUPT`));
  // The undamaged images still restore.
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});

test('stasis show into a reader that goes away (| head) ends quietly with exit 0', async () => {
  const w = new Workload('counter', compileWorkload('counter')).start();
  const images = tmpDir('show-img');
  await dump({ pid: w.pid, imagesDir: images, leaveRunning: true });
  w.go();
  assertPassed(w.finish());
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${CLI}" show -D "${images}" | head -c 10 >/dev/null`], { encoding: 'utf8' });
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
});
