// CRIU's images both ways for the sockets that need a network namespace of their own (packet
// sockets make lo promiscuous, netlink ones change its MTU and listen on its events): the
// file runs itself again under `unshare -n`. CRIU 4.2 restores what stasis dumped, stasis
// restores what CRIU dumped (its PacketSockEntry and NetlinkSkEntry with their ns_id), and the
// restored workload checks itself (as a shell job, as the other interop tests; the workload
// CRIU dumps leads a session of its own, which CRIU needs when this process's session leader
// is outside its pid namespace). Without CRIU's binary the test is skipped with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, assertPassed, tmpDir, verifyImages } from '../harness.js';
import { dump, restore } from '../../../src/api/index.js';
import { setChildSubreaper } from '../../../src/sys/index.js';
import { inOwnNetns, netnsUnavailable, runInOwnNetns } from '../sockets/netns.js';
import { criu, criuWorks, reapDumped } from './criu-tool.js';

const FLAG = 'STASIS_CRIU_NETNS';

async function bothWays(workload: string): Promise<void> {
  const to = new Workload(`${workload}-to-criu`, compileWorkload(workload)).start();
  const images = tmpDir(`${workload}-to-criu`);
  await dump({ pid: to.pid, imagesDir: images, shellJob: true });
  verifyImages(images);
  criu(['restore', '-d', '-j'], images, 'restore.log');
  assert.ok(fs.existsSync(`/proc/${to.pid}`), `CRIU did not bring back pid ${to.pid}`);
  to.go();
  assertPassed(to.finish());

  const from = new Workload(`${workload}-from-criu`, compileWorkload(workload)).start({ setsid: true });
  const dir = tmpDir(`${workload}-from-criu`);
  criu(['dump', '-t', String(from.pid), '-j'], dir, 'dump.log');
  reapDumped(dir);
  const r = await restore({ imagesDir: dir, detach: true, shellJob: true, noVerify: true });
  assert.equal(r.pid, from.pid);
  from.go();
  assertPassed(from.finish());
}

if (inOwnNetns(FLAG)) {
  // The tree CRIU restores with -d is its child until CRIU exits: then it is this process's.
  setChildSubreaper();
  await bothWays('packet');
  await bothWays('netlink');
  process.stdout.write('criu netns ok\n');
} else {
  test('packet and netlink sockets: CRIU 4.2 restores stasis\'s images and stasis restores CRIU 4.2\'s', {
    skip: criuWorks() || netnsUnavailable([]),
  }, () => runInOwnNetns(import.meta.url, FLAG, /criu netns ok/));
}
