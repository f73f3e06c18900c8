// podman (`--runtime runc`) with stasis as the `criu` on its PATH: a container of a busybox
// image made with `podman import` (no registry) counts on its stdout; `podman container
// checkpoint` stops it into images, `podman container restore` brings it back, and its log
// (`podman logs`, podman's conmon reading the stdout pipe runc hands back) goes on with no gap
// and no repeat. podman keeps everything under the test's directory (--root, --runroot,
// --tmpdir, vfs storage) and its cgroups under a parent of the test's own, removed at the end;
// it runs in the private mount namespace of runc-kit.ts, with CONTAINER-NOTES.md's flags
// (--network none, the ulimits, cgroupfs, no events).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO, tmpDir } from '../harness.js';
import { COUNTER, gapsIn, inRuncNs, makeRootfs, runcUnavailable, stasisAsCriu } from './runc-kit.js';

const why = runcUnavailable(['podman', 'tar']);

/** Removes the cgroup directories named `parent` in every hierarchy, deepest first (empty of tasks by then). */
function removeCgroupParent(parent: string): void {
  for (const h of fs.existsSync('/sys/fs/cgroup') ? ['', ...fs.readdirSync('/sys/fs/cgroup')] : []) {
    const d = path.join('/sys/fs/cgroup', h, parent);
    if (fs.existsSync(d) && fs.statSync(d).isDirectory()) execFileSync('find', [d, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { stdio: 'ignore' });
  }
}

test('podman checkpoints and restores a runc container with stasis as its criu: its log goes on with no gap and no repeat', { skip: why, timeout: 240_000 }, () => {
  const dir = tmpDir('podman');
  const wrapper = stasisAsCriu(dir, REPO);
  makeRootfs(dir);
  execFileSync('tar', ['-C', path.join(dir, 'rootfs'), '-cf', path.join(dir, 'rootfs.tar'), '.']);
  const parent = `stasis-test-podman-${process.pid}`;
  const P = `podman --root ${dir}/root --runroot ${dir}/runroot --tmpdir ${dir}/tmp --storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend none`;
  const counter = COUNTER[2]!.replace('echo $i >> /count; ', '');
  try {
    const r = inRuncNs(`
      # podman's lock (shm_open: /dev/shm/libpod_lock) goes in a /dev/shm of this namespace's own, and with it.
      mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 1
      trap '${P} rm -f -t 0 ctr >/dev/null 2>&1' EXIT
      ${P} import ${dir}/rootfs.tar localhost/stasis-busybox >/dev/null || { echo "import failed"; exit 1; }
      ${P} run -d --name ctr --network none --log-driver k8s-file --cgroup-parent /${parent} --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/stasis-busybox sh -c '${counter}' >/dev/null || { echo "run failed"; exit 1; }
      w=0; until ${P} logs ctr 2>/dev/null | grep -q '^out5$'; do w=$((w+1)); [ $w -gt 100 ] && { echo "no log"; exit 1; }; sleep 0.1; done
      ${P} container checkpoint --keep ctr >/dev/null || { echo "checkpoint failed"; cat ${dir}/root/vfs-containers/*/userdata/dump.log; exit 1; }
      n1=$(${P} logs ctr | grep -c '^out'); sleep 0.3; n2=$(${P} logs ctr | grep -c '^out')
      echo "at-dump=$n1 later=$n2 state=$(${P} inspect -f '{{.State.Status}}' ctr)"
      ${P} container restore --keep ctr >/dev/null || { echo "restore failed"; cat ${dir}/root/vfs-containers/*/userdata/restore.log; exit 1; }
      w=0; until [ $(${P} logs ctr | grep -c '^out') -gt $((n1 + 10)) ]; do w=$((w+1)); [ $w -gt 100 ] && { echo "no log after restore"; exit 1; }; sleep 0.1; done
      echo "restored=$(${P} inspect -f '{{.State.Status}}' ctr)"
      echo "by-stasis=$(cat ${dir}/root/vfs-containers/*/userdata/dump.log ${dir}/root/vfs-containers/*/userdata/restore.log | grep -c 'requested over RPC')"
      ${P} logs ctr > ${dir}/log.txt
    `, 200_000, { PATH: `${path.dirname(wrapper)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const m = /at-dump=(\d+) later=(\d+) state=(\w+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(m[1], m[2], `the container logged on after its checkpoint: ${r.stdout}`);
    assert.equal(m[3], 'exited', r.stdout);
    assert.match(r.stdout, /restored=running/, r.stdout);
    // stasis, not a criu of the machine's, did both (its logs say so).
    assert.match(r.stdout, /by-stasis=2/, r.stdout);
    const lines = fs.readFileSync(path.join(dir, 'log.txt'), 'utf8').split('\n').filter((l) => l.startsWith('out'));
    assert.ok(lines.length > Number(m[1]) + 10, `${lines.length} lines logged, ${m[1]} at the checkpoint`);
    assert.deepEqual(gapsIn(lines, 'out'), [], 'the log skips or repeats');
  } finally {
    removeCgroupParent(parent);
  }
});
