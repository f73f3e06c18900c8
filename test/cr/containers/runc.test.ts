// runc with stasis as its criu (`runc --criu WRAPPER checkpoint`, then `restore -d`), on a
// busybox container whose shell counts into a file of its rootfs and prints to its stdout, a
// pipe to a `cat` of the test's. runc speaks CRIU's RPC to stasis (swrk): VERSION, then DUMP
// with its root, ext_mnt, freeze_cgroup (the container is frozen through it) and orphan_pts_master, then RESTORE with rst_sibling
// (the container's init comes back as runc's child) and inherit_fd (its stdout, a new pipe).
// After the restore the count goes on with no gap and no repeat, in the file and on the new
// stdout pipe; the same through a pre-dump and a final checkpoint on top of it
// (--parent-path), which writes fewer pages. runc runs in a private mount namespace
// (runc-kit.ts), and each container is killed and deleted at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, tmpDir } from '../harness.js';
import { COUNTER, gapsIn, inRuncNs, makeBundle, runcUnavailable, stasisAsCriu, waitLines } from './runc-kit.js';

const why = runcUnavailable();

const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : `(no ${path.basename(f)})`);
const pagesOf = (dir: string) => fs.readdirSync(dir).filter((f) => /^pages-\d+\.img$/.test(f)).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);

/** Runs the container, checkpoints it (after `preDump` if asked), restores it, lets it count on; what the shell saw. */
function roundTrip(dir: string, preDump: boolean): { stdout: string; logs: string; count: string; bundle: string } {
  const bundle = makeBundle(dir, COUNTER);
  const criu = stasisAsCriu(dir, REPO);
  const id = `stasis-test-${process.pid}-${preDump ? 'pre' : 'plain'}`;
  const count = path.join(bundle, 'rootfs/count');
  const out = path.join(dir, 'out.log');
  const r = inRuncNs(`
    trap 'runc kill ${id} KILL >/dev/null 2>&1; sleep 0.2; runc delete -f ${id} >/dev/null 2>&1' EXIT
    runc run -d --bundle ${bundle} ${id} </dev/null 2>&1 | cat >> ${out} &
    ${waitLines(count, 5)}
    ${preDump ? `runc --criu ${criu} checkpoint --pre-dump --image-path ${dir}/pre --work-path ${dir}/prework ${id} || { echo "predump failed"; exit 1; }
    n0=$(wc -l < ${count}); ${waitLines(count, '$((n0 + 3))')}` : ''}
    runc --criu ${criu} checkpoint ${preDump ? '--parent-path ../pre ' : ''}--image-path ${dir}/img --work-path ${dir}/work ${id} || { echo "checkpoint failed"; exit 1; }
    n1=$(wc -l < ${count}); sleep 0.3; n2=$(wc -l < ${count})
    echo "at-dump=$n1 later=$n2 status=$(runc state ${id} 2>/dev/null | grep -c running)"
    runc --criu ${criu} restore -d --image-path ${dir}/img --work-path ${dir}/rwork --bundle ${bundle} ${id} </dev/null 2>&1 | cat >> ${out} &
    ${waitLines(count, '$((n1 + 10))')}
    echo "restored=$(runc state ${id} | grep -c '"running"')"
  `, 120_000);
  const logs = ['prework/dump.log', 'work/dump.log', 'rwork/restore.log'].map((f) => `--- ${f}\n${read(path.join(dir, f))}`).join('\n');
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}\n${logs}\n--- out.log\n${read(out)}`);
  return { stdout: r.stdout, logs, count, bundle };
}

function assertCarriedOn(dir: string, t: { stdout: string; logs: string; count: string }): void {
  const m = /at-dump=(\d+) later=(\d+) status=(\d+)/.exec(t.stdout);
  assert.ok(m, t.stdout);
  // The checkpoint stops the container (runc kills it once the images are written).
  assert.equal(m[1], m[2], `the container counted on after its checkpoint: ${t.stdout}`);
  assert.equal(m[3], '0', `the container still runs after its checkpoint: ${t.stdout}`);
  assert.match(t.stdout, /restored=1/, `${t.stdout}\n${t.logs}`);
  assert.equal(t.logs.match(/stasis (dump|restore) requested over RPC/g)?.length, 2, t.logs);
  // runc names the container's cgroup (freeze_cgroup): the dump froze the container through it.
  assert.match(t.logs, /froze cgroup \S+ \((v2|v1 freezer)\) in [\d.]+ ms, seized its [1-9]\d* thread/, t.logs);
  const counted = fs.readFileSync(t.count, 'utf8').split('\n');
  assert.ok(counted.length > Number(m[1]) + 5, `the count did not go on after the restore: ${counted.length} lines, ${m[1]} at the dump`);
  assert.deepEqual(gapsIn(counted), [], 'the count in the file skips or repeats');
  // Its stdout is the pipe runc's restore gave it (inherit_fd): its lines go on there without a gap or a repeat.
  const printed = fs.readFileSync(path.join(dir, 'out.log'), 'utf8').split('\n').filter((l) => /^out\d+$/.test(l));
  assert.ok(printed.length > Number(m[1]) + 5, `the restored container's stdout is not the new pipe: ${printed.length} lines, ${m[1]} at the dump\n${t.logs}`);
  assert.deepEqual(gapsIn(printed, 'out'), [], 'the stdout lines skip or repeat');
}

test('runc checkpoints and restores a container with stasis as its criu: the count goes on with no gap and no repeat, in its file and on its new stdout pipe', { skip: why, timeout: 150_000 }, () => {
  const dir = tmpDir('runc');
  const t = roundTrip(dir, false);
  assertCarriedOn(dir, t);
  // runc's restore asked for the root as its sibling and for the stdout pipe it holds (descriptors.json).
  const descriptors = JSON.parse(fs.readFileSync(path.join(dir, 'img/descriptors.json'), 'utf8')) as string[];
  assert.match(descriptors[1] ?? '', /^pipe:\[\d+\]$/, JSON.stringify(descriptors));
});

test('runc pre-dumps a container with stasis, then checkpoints it on top (--parent-path): fewer pages, and the count goes on with no gap', { skip: why, timeout: 150_000 }, () => {
  const dir = tmpDir('runc-pre');
  const t = roundTrip(dir, true);
  assertCarriedOn(dir, t);
  const pre = pagesOf(path.join(dir, 'pre')), last = pagesOf(path.join(dir, 'img'));
  assert.ok(pre > 0, 'the pre-dump wrote no pages');
  assert.ok(last < pre, `the checkpoint on top of the pre-dump wrote ${last} bytes of pages, the pre-dump ${pre}`);
});
