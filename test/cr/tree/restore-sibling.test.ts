// --restore-sibling (-S; RPC rst_sibling, which runc sets on every restore): the restored root
// is a child of stasis's caller, not of stasis. The caller here is a small C program
// (sibling-parent.c) that runs `stasis restore -S -d`, waits for it, lists its own children
// and waits for the restored root as runc waits for a container's init: the root must be its
// one child, carry on, and be reaped by it with its own exit status, no stub of stasis's left
// to it. stasis is run through child_process (it is never traced); the root it traces is not
// a child of this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Workload, REPO, compileWorkload, tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump } from '../../../src/api/index.js';
import { spawnTask, waitPid } from '../../../src/sys/index.js';
import { namespacesUnavailable, childOf, killTree } from '../ns/private-proc.js';

const CLI = path.join(REPO, 'bin/stasis.js');

interface Caller {
  proc: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

/** sibling-parent running `stasis restore -S -d -D images --pidfile FILE` (its report goes to `out`). */
function restoreAsSibling(images: string, dir: string): Caller {
  const out = path.join(dir, 'caller.out');
  const fd = fs.openSync(out, 'w');
  const proc = spawn(compileWorkload('sibling-parent'), [process.execPath, CLI, 'restore', '-S', '-d', '-D', images, '--pidfile', path.join(dir, 'root.pid'), '-o', path.join(dir, 'restore.log')], {
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, out, exited };
}

/** The caller's report once it has line `key` (stasis's output first: its lines begin otherwise). */
function report(c: Caller, key: string): Map<string, string> {
  const lines = () => new Map(fs.readFileSync(c.out, 'utf8').split('\n').map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)] as [string, string]));
  return waitFor(`the caller's "${key}" line (${fs.readFileSync(c.out, 'utf8')})`, () => lines().has(key) && lines());
}

function status(pid: number, field: string): string {
  return new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
}

const lastCount = (dir: string) => Number(fs.readFileSync(path.join(dir, 'counter.log'), 'utf8').trim().split('\n').pop());

test('restore -S -d: the root is a child of stasis\'s caller, counts on, and the caller reaps it with its exit status', async () => {
  const w = new Workload('sibling-counter', compileWorkload('counter')).start({ setsid: true });
  const images = tmpDir('sibling-img');
  await dump({ pid: w.pid, imagesDir: images });
  verifyImages(images);
  const dumped = lastCount(w.dir);
  const c = restoreAsSibling(images, w.dir);
  try {
    const r = report(c, 'children');
    assert.equal(r.get('stasis'), '0 exit 0', fs.readFileSync(c.out, 'utf8'));
    assert.equal(r.get('children'), String(w.pid), 'the caller\'s children are not the restored root alone');
    assert.equal(fs.readFileSync(path.join(w.dir, 'root.pid'), 'utf8'), String(w.pid));
    assert.equal(status(w.pid, 'PPid'), String(c.proc.pid));
    assert.equal(status(w.pid, 'TracerPid'), '0', 'stasis still traces the root');
    waitFor('the counter to go on', () => lastCount(w.dir) > dumped + 20);
    w.go();
    const done = report(c, 'others');
    assert.equal(done.get('reaped'), `${w.pid} exit 0`, fs.readFileSync(w.file('result'), 'utf8'));
    assert.equal(done.get('others'), 'none');
    assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
    assert.equal(await c.exited, 0);
  } finally {
    c.proc.kill('SIGKILL');
  }
});

/** nsroot under `unshare --fork FLAGS` (checking CHECKS), dumped, restored by the C caller with -S, reaped by it. */
async function siblingInNamespaces(flags: string[], checks: string): Promise<void> {
  const dir = tmpDir('sibling-ns');
  const unshare = spawnTask(['unshare', '--fork', ...flags, compileWorkload('nsroot'), dir, checks], {
    cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` },
  });
  let root = 0;
  let c: Caller | undefined;
  try {
    waitFor('nsroot ready', () => fs.existsSync(`${dir}/ready`));
    const images = tmpDir('sibling-ns-img');
    await dump({ pid: childOf(unshare)!, imagesDir: images });
    waitPid(unshare); // its child was killed: it ends too
    c = restoreAsSibling(images, dir);
    const r = report(c, 'children');
    assert.equal(r.get('stasis'), '0 exit 0', `${fs.readFileSync(c.out, 'utf8')}${fs.readFileSync(path.join(dir, 'restore.log'), 'utf8').split('\n').filter((l) => /Error/.test(l)).join('\n')}`);
    root = Number(fs.readFileSync(path.join(dir, 'root.pid'), 'utf8'));
    assert.equal(r.get('children'), String(root));
    assert.equal(status(root, 'PPid'), String(c.proc.pid));
    if (checks.includes('pid')) assert.equal(status(root, 'NSpid'), `${root}\t1`);
    for (const k of checks.split(',')) assert.notEqual(fs.readlinkSync(`/proc/${root}/ns/${k}`), fs.readlinkSync(`/proc/self/ns/${k}`), `the root is in stasis's ${k} namespace`);
    fs.writeFileSync(`${dir}/go`, '');
    const done = report(c, 'others');
    assert.equal(done.get('reaped'), `${root} exit 0`, fs.existsSync(`${dir}/result`) ? fs.readFileSync(`${dir}/result`, 'utf8') : 'no result');
    assert.equal(done.get('others'), 'none');
    assert.match(fs.readFileSync(`${dir}/result`, 'utf8'), /^PASS/);
    assert.equal(await c.exited, 0);
  } finally {
    if (root) killTree(root);
    c?.proc.kill('SIGKILL');
    killTree(unshare);
    try {
      waitPid(unshare);
    } catch {
      /* reaped */
    }
  }
}

test('restore -S -d of a tree in its own pid namespace: its init (pid 1 inside) is a child of the caller, which reaps it', { skip: namespacesUnavailable() }, async () => {
  await siblingInNamespaces(['--pid'], 'pid');
});

// Born in a user namespace, the root is a copy of stasis, not an exec'd stub (sibling-root.ts).
test('restore -S -d of a tree in its own user, pid and UTS namespaces: uid 0 inside with the same maps, a child of the caller', { skip: namespacesUnavailable() }, async () => {
  await siblingInNamespaces(['--user', '--map-root-user', '--pid', '--uts'], 'user,pid,uts');
});

// Without a pid namespace, a holder makes the tree's namespaces and the root joins them (it enters the user namespace later, as without -S).
test('restore -S -d of a tree in its own user, UTS and time namespaces, in stasis\'s pid namespace: a child of the caller', { skip: namespacesUnavailable() }, async () => {
  await siblingInNamespaces(['--user', '--map-root-user', '--uts', '--time', '--monotonic=100000', '--boottime=200000'], 'user,uts,time');
});
