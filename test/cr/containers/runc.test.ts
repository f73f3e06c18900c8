// runc with stasis as its criu (`runc --criu WRAPPER checkpoint`), on a busybox container
// whose shell counts into a file, as CONTAINER-NOTES.md describes: runc runs inside a private
// mount namespace with /proc/sys writable and a devpts of its own, and the container is
// killed and deleted at the end. How far it gets today: runc's VERSION handshake and its DUMP
// request reach stasis, which takes runc's options (root, ext_mnt, freeze_cgroup,
// orphan_pts_master, ...), freezes the container and plans its mount namespace mount by
// mount (its /dev tmpfs too, with /dev/pts, /dev/shm and /dev/mqueue on it: kept from a clone
// of the tmpfs alone), then refuses the container's stdout, a host file (runc run -d >ctr.log)
// outside its mount namespace. The refusal is in runc's dump.log, and the container runs on, its
// count going up. Mount namespaces themselves are restored (test/cr/ns/mount-ns.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO, tmpDir } from '../harness.js';

const SBIN = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const has = (p: string) => spawnSync('sh', ['-c', `command -v ${p}`], { env: { ...process.env, PATH: SBIN } }).status === 0;

function unavailable(): string | false {
  for (const p of ['runc', 'busybox', 'unshare']) if (!has(p)) return `${p} is not installed (apt-get install runc busybox-static)`;
  return false;
}

/** A bundle: busybox and its links, `runc spec` with stdio off a terminal and a writable root. */
function makeBundle(dir: string, args: string[]): string {
  const b = path.join(dir, 'bundle');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) fs.mkdirSync(path.join(b, 'rootfs', d), { recursive: true });
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  fs.copyFileSync(busybox, path.join(b, 'rootfs/bin/busybox'));
  fs.chmodSync(path.join(b, 'rootfs/bin/busybox'), 0o755);
  for (const l of ['sh', 'sleep', 'cat', 'echo']) fs.symlinkSync('busybox', path.join(b, 'rootfs/bin', l));
  const r = spawnSync('runc', ['spec'], { cwd: b, env: { ...process.env, PATH: SBIN } });
  assert.equal(r.status, 0, String(r.stderr));
  const c = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')) as { process: { terminal: boolean; args: string[] }; root: { readonly: boolean } };
  c.process.terminal = false;
  c.process.args = args;
  c.root.readonly = false;
  fs.writeFileSync(path.join(b, 'config.json'), JSON.stringify(c));
  return b;
}

const why = unavailable();

test('runc pre-dump with stasis as its criu works, and its checkpoint plans every mount (the /dev tmpfs with mounts on it too) and is refused for the container\'s host-file stdout; the container runs on', { skip: why, timeout: 120_000 }, () => {
  const dir = tmpDir('runc');
  // Its sleep children come and go: a pre-dump may see one exit between its thaw and its reading of memory.
  const bundle = makeBundle(dir, ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i >> /count; sleep 0.05; done']);
  const wrapper = path.join(dir, 'criu');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${path.join(REPO, 'bin/stasis.js')} "$@"\n`, { mode: 0o755 });
  const id = `stasis-test-${process.pid}`;
  const count = path.join(bundle, 'rootfs/count');
  const script = `
    set -u
    while grep -q " /proc/sys " /proc/self/mountinfo; do umount -l /proc/sys || exit 1; done
    mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
    trap 'runc kill ${id} KILL >/dev/null 2>&1; sleep 0.2; runc delete -f ${id} >/dev/null 2>&1' EXIT
    runc run -d --bundle ${bundle} ${id} </dev/null >${dir}/ctr.log 2>&1 || { echo "run failed"; cat ${dir}/ctr.log; exit 1; }
    n=0; while [ "$(cat ${count} 2>/dev/null | wc -l)" -lt 5 ]; do n=$((n+1)); [ $n -gt 200 ] && { echo "no count"; exit 1; }; sleep 0.05; done
    runc --criu ${wrapper} checkpoint --pre-dump --image-path ${dir}/pre --work-path ${dir}/prework ${id} 2>${dir}/predump.err
    echo "predump=$?"
    runc --criu ${wrapper} checkpoint --image-path ${dir}/img --work-path ${dir}/work ${id} 2>${dir}/checkpoint.err
    echo "checkpoint=$?"
    before=$(wc -l < ${count}); sleep 0.5; after=$(wc -l < ${count})
    echo "before=$before after=$after"
    echo "status=$(runc state ${id} | grep -o '"status": *"[a-z]*"' | grep -o '[a-z]*"$')"
  `;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { env: { ...process.env, PATH: SBIN }, encoding: 'utf8', timeout: 100_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  // A pre-dump through runc (FEATURE_CHECK mem_track, then PRE_DUMP with runc's options) works: memory only, no mount.
  assert.match(r.stdout, /predump=0/, `${r.stdout}\n${fs.readFileSync(path.join(dir, 'predump.err'), 'utf8')}\n${fs.existsSync(path.join(dir, 'prework/dump.log')) ? fs.readFileSync(path.join(dir, 'prework/dump.log'), 'utf8') : ''}`);
  assert.ok(fs.readdirSync(path.join(dir, 'pre')).some((f) => /^pages-\d+\.img$/.test(f)), 'the pre-dump wrote no pages');
  assert.match(r.stdout, /checkpoint=1/, r.stdout);
  const log = fs.readFileSync(path.join(dir, 'work/dump.log'), 'utf8');
  // runc's root, ext_mnt, freeze_cgroup and orphan_pts_master were taken: the tree was frozen and its mounts planned.
  assert.match(log, /froze [12] task\(s\)/, log);
  // Every mount was planned (the namespace check comes before the files), its /dev tmpfs with the mounts on it too.
  assert.doesNotMatch(log, /Cannot dump mnt namespace/, log);
  assert.match(log, /Cannot dump fd 1 of pid \d+: \S+\/ctr\.log is on mount \d+, which is not in the tree's mount namespace/, log);
  const m = /before=(\d+) after=(\d+)/.exec(r.stdout)!;
  assert.ok(Number(m[2]) > Number(m[1]), `the container stopped counting after the refused checkpoint: ${r.stdout}`);
  assert.match(r.stdout, /status=running"?/, r.stdout);
  fs.rmSync(dir, { recursive: true, force: true });
});
