// Credentials and prctl state of a process and of one of its threads, across a checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused, waitFor, tmpDir } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';

const STATUS_KEYS = ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'THP_enabled'];

/** What the kernel says of each thread's credentials and the process's settings, by tid. */
function snapshot(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tid of fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b)) {
    const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    for (const k of STATUS_KEYS) out[`${tid} ${k}`] = new RegExp(`^${k}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '(none)';
    out[`${tid} loginuid`] = fs.existsSync(`/proc/${pid}/task/${tid}/loginuid`) ? fs.readFileSync(`/proc/${pid}/task/${tid}/loginuid`, 'utf8') : '(none)';
  }
  for (const f of ['oom_score_adj', 'personality']) out[f] = fs.readFileSync(`/proc/${pid}/${f}`, 'utf8').trim();
  return out;
}

test('a non-root process with other credentials in a thread comes back with every id, group, capability set, securebit and prctl value, and no more power', async () => {
  const w = new Workload('creds', compileWorkload('creds', ['-pthread'])).start();
  waitFor('two threads', () => fs.readdirSync(`/proc/${w.pid}/task`).length === 2);
  const before = snapshot(w.pid);
  // The state is what the workload set (a test that cannot fail proves nothing).
  const [leader, other] = fs.readdirSync(`/proc/${w.pid}/task`).map(Number).sort((a, b) => a - b);
  assert.equal(before[`${leader} Uid`], '1001\t1002\t1003\t1004');
  assert.equal(before[`${other} Uid`], '1011\t1012\t1013\t1012');
  assert.equal(before[`${leader} CapAmb`], '0000000000000400');
  assert.equal(before.oom_score_adj, '321');
  await checkpointRestore(w);
  assert.deepEqual(snapshot(w.pid), before);
  w.go();
  assertPassed(w.finish());
});

test('the credentials are in CRIU\'s fields of each thread\'s core image', async () => {
  const w = new Workload('creds-img', compileWorkload('creds', ['-pthread'])).start();
  const images = tmpDir('creds-img-img');
  const { readImage } = await import('../../../src/image/index.js');
  await dump({ pid: w.pid, imagesDir: images });
  const tids = fs.readdirSync(images).filter((f) => /^core-\d+\.img$/.test(f)).map((f) => Number(/\d+/.exec(f)![0])).sort((a, b) => a - b);
  assert.equal(tids.length, 2);
  const creds = tids.map((t) => readImage(images, 'core', t)[0]!.threadCore!.creds!);
  assert.deepEqual([creds[0]!.uid, creds[0]!.euid, creds[0]!.suid, creds[0]!.fsuid], [1001, 1002, 1003, 1004]);
  assert.deepEqual([creds[0]!.gid, creds[0]!.egid, creds[0]!.sgid, creds[0]!.fsgid], [2001, 2002, 2003, 2004]);
  assert.deepEqual(creds[0]!.groups, [3001, 3002]);
  assert.deepEqual(creds[0]!.capEff, [1 << 10, 0]);
  assert.deepEqual(creds[0]!.capPrm, [(1 << 10) | (1 << 5), 0]);
  assert.deepEqual(creds[0]!.capAmb, [1 << 10, 0]);
  assert.equal(creds[0]!.secbits, 0x11);
  assert.equal(creds[0]!.noNewPrivs, 1);
  assert.equal(creds[0]!.capBnd[0]! & (1 << 21), 0, 'CAP_SYS_ADMIN is in the bounding set');
  assert.deepEqual([creds[1]!.uid, creds[1]!.euid, creds[1]!.suid], [1011, 1012, 1013]);
  assert.deepEqual(creds[1]!.capPrm, [0, 0]);
  const tc = readImage(images, 'core', tids[0]!)[0]!.tc!;
  assert.equal(tc.oomScoreAdj, 321);
  assert.equal(tc.personality, 0x0040000);
  assert.equal(readImage(images, 'mm', tids[0]!)[0]!.thpDisabled, true);
  const r = await restore({ imagesDir: images, detach: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
});

test('THP disabled except where advised is refused at dump, the process left running as it was', async (t) => {
  const w = new Workload('thp-advised', compileWorkload('thp-advised')).start();
  if (fs.existsSync(w.file('unsupported'))) {
    w.kill();
    t.skip('this kernel has no PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18)');
    return;
  }
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`pid ${w.pid}`), /THP-disable/]);
  w.go();
  assertPassed(w.finish());
});
