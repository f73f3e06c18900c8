// A tree in a network namespace of its own (`unshare -n --fork`) whose lo has addresses,
// routes and a routing rule of its own (CRIU's zdtm netns: 1.2.3.4, a route to 1.2.3.5 on lo
// and one via it; an IPv6 address with its prefix route; a rule to table 100), and net
// sysctls of its own: devconf ones of all, default and lo, IPv4 and IPv6, lo's stable_secret,
// net.ipv4.ping_group_range and net.unix.max_dgram_qlen. Dumped and restored, the new
// namespace lists the same links, addresses, routes, rules and net sysctls, and sockets on the
// restored addresses work: a TCP listener bound to 1.2.3.4 before the dump takes a connection,
// a UDP socket bound to the IPv6 address after it gets its own datagram. What CRIU's images
// cannot carry (a route of another table than main) is refused at dump, the tree left
// running; CRIU 4.2 restores stasis's images of such a namespace, and stasis CRIU's. Devices: a veth
// pair inside, a bridge with one end as port and a veth whose peer is outside come back (from
// stasis and from CRIU 4.2) with their ifindex, MAC, MTU, master and state, the last also as a
// veth made beforehand and moved in (--external netdev[IN]:OUT); an ifb device and a
// bridge whose carrier would differ are refused (tun devices: tun.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { compileWorkload, tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { setChildSubreaper, spawnTask, waitPid } from '../../../src/sys/index.js';
import { SBIN_ENV } from '../sockets/netns.js';
import { fileURLToPath } from 'node:url';
import { namespacesUnavailable, inPrivateProc, childOf, killTree, assertExitsZero, endTree } from './private-proc.js';
import { criu, criuWorks } from '../interop/criu-tool.js';

const FLAG = 'STASIS_NETDEV_TEST';
const has = (p: string) => spawnSync('sh', ['-c', `command -v ${p}`], { env: SBIN_ENV }).status === 0;
const missing = ['ip', 'nsenter', 'sysctl'].find((p) => !has(p));
const why = namespacesUnavailable() || (missing ? `${missing} is not installed` : false);

const V4 = '1.2.3.4', V6 = '2001:db8::1';
const SETUP = `set -e
ip link set lo up
ip addr add ${V4} dev lo
ip route add 1.2.3.5 dev lo
ip route add 1.2.3.6 via 1.2.3.5
ip -6 addr add ${V6}/64 dev lo
ip rule add from 10.9.0.0/16 table 100 prio 1000
sysctl -q -w net.ipv4.conf.all.forwarding=1 net.ipv4.conf.default.arp_ignore=2 net.ipv4.conf.lo.arp_announce=1
sysctl -q -w net.ipv6.conf.all.hop_limit=33 net.ipv6.conf.default.accept_redirects=0 net.ipv6.conf.lo.accept_dad=2 net.unix.max_dgram_qlen=77
echo 2001:db8::abcd > /proc/sys/net/ipv6/conf/lo/stable_secret
sysctl -q -w net.ipv4.ping_group_range="40000 50000"
`;

if (!inPrivateProc(FLAG)) {
  // In a network namespace of its own too: the devices a test makes outside the tree's go there.
  test('netdev: every test, in private mount and network namespaces with /proc/sys writable', { skip: why }, () => {
    const script = 'while grep -q " /proc/sys " /proc/self/mountinfo; do umount -l /proc/sys || exit 1; done; ip link set lo up && exec "$@"';
    const env: NodeJS.ProcessEnv = { ...process.env, [FLAG]: '1' };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync('unshare', ['-m', '-n', '--propagation', 'private', 'sh', '-c', script, 'x', process.execPath, '--test-reporter=tap', fileURLToPath(import.meta.url)], {
      env: { ...env, PATH: SBIN_ENV.PATH }, encoding: 'utf8', timeout: 300_000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^# fail 0$/m);
  });
} else {
  /** Starts the workload under `unshare -n --fork` after SETUP and `extra`; its pid once ready. */
  function start(extra = '', session = false, v4 = V4): { unshare: number; pid: number; dir: string } {
    const dir = tmpDir('netaddr');
    // A tree CRIU dumps leads a session of its own (CI's session leader is outside its pid namespace).
    const unshare = spawnTask(['unshare', '-n', '--fork', ...(session ? ['setsid'] : []), 'sh', '-c', `${SETUP}${extra}\nexec "$@" >/dev/null 2>&1`, 'sh', compileWorkload('netaddr'), dir, v4, V6], {
      cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` }, env: SBIN_ENV,
    });
    const ready = waitFor('netaddr ready', () => fs.existsSync(`${dir}/ready`) || waitPid(unshare, true));
    if (ready !== true) throw new Error(`netaddr did not start: ${fs.readFileSync(`${dir}/stderr.log`, 'utf8')} ${JSON.stringify(ready)}`);
    return { unshare, pid: childOf(unshare)!, dir };
  }

  const inNs = (pid: number, cmd: string) => execFileSync('nsenter', ['-t', String(pid), '-n', 'sh', '-c', cmd], { env: SBIN_ENV, encoding: 'utf8' });

  /** What the namespace of `pid` lists of its links, addresses, routes and rules, and its net sysctls. */
  // A bridge's and its ports' timers run; routes of one prefix on several devices list in the
  // order their addresses came up, which differs run to run (CI saw fe80::/64 of br1 and vin0 swap).
  const listing = (pid: number) => inNs(pid, 'ip -d link show | sed -E "s/ (hello|tcn|topology_change|gc|hold|message_age|forward_delay)_timer +[0-9.]+//g"; cat /proc/sys/net/ipv4/ping_group_range; ip addr show; ip route show table all | sort; ip -6 route show table all | sort; ip rule show; ip -6 rule show; '
    + 'sysctl -a 2>/dev/null | grep "^net\\." | grep -v nf_conntrack_count; cat /proc/sys/net/ipv6/conf/lo/stable_secret');

  /** Lets the workload of `dir`, restored as `pid`, check itself; it must pass. */
  function finish(pid: number, dir: string): void {
    fs.writeFileSync(`${dir}/go`, '');
    waitFor('the result', () => fs.existsSync(`${dir}/result`), 30000);
    assert.match(fs.readFileSync(`${dir}/result`, 'utf8'), /^PASS/);
    fs.writeFileSync(`${dir}/end`, '');
    void pid;
  }

  /** finish() for a restored tree, whose root must then exit 0. */
  function finishRestored(pid: number, dir: string): void {
    finish(pid, dir);
    assertExitsZero(pid);
  }

  test('lo\'s addresses, routes of the main table and the routing rules come back, and sockets on the restored addresses work', async () => {
    const w = start();
    const before = listing(w.pid);
    assert.match(before, /inet 1\.2\.3\.4\/32 scope global lo/);
    assert.match(before, /1\.2\.3\.6 via 1\.2\.3\.5 dev lo/);
    assert.match(before, /1000:\tfrom 10\.9\.0\.0\/16 lookup 100/);
    assert.match(before, /^net\.ipv4\.conf\.lo\.arp_announce = 1$/m);
    assert.match(before, /^net\.unix\.max_dgram_qlen = 77$/m);
    assert.match(before, /^2001:0db8:0000:0000:0000:0000:0000:abcd$/m);
    const images = tmpDir('netaddr-img');
    try {
      await dump({ pid: w.pid, imagesDir: images });
    } catch (err) {
      killTree(w.unshare);
      waitPid(w.unshare);
      throw err;
    }
    waitPid(w.unshare);
    verifyImages(images);
    const files = fs.readdirSync(images);
    for (const f of ['ifaddr-', 'route-', 'route6-', 'rule-']) assert.ok(files.some((x) => x.startsWith(f)), `no ${f}*: ${files.join(' ')}`);
    // CRIU's raw images: what `ip addr save` writes, which `ip addr showdump` reads.
    const ifaddr = files.find((x) => x.startsWith('ifaddr-'))!;
    const shown = execFileSync('ip', ['addr', 'showdump'], { env: SBIN_ENV, encoding: 'utf8', input: fs.readFileSync(`${images}/${ifaddr}`) });
    assert.match(shown, /inet 1\.2\.3\.4\/32 scope global lo/);
    const r = await restore({ imagesDir: images, detach: true });
    try {
      assert.equal(listing(r.pid), before, 'the restored namespace lists other links, addresses, routes or rules');
      finishRestored(r.pid, w.dir);
    } finally {
      endTree(r.pid);
    }
  });

  test('a route of another table than main, which CRIU\'s route image does not hold, is refused, and the tree carries on', async () => {
    const w = start('ip route add 1.2.3.7 dev lo table 100\n');
    try {
      const images = tmpDir('netaddr-refused');
      await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
        assert.ok(e instanceof StasisError, String(e));
        assert.equal(e.code, 'E_UNSUPPORTED', e.message);
        assert.match(e.message, /its devices, addresses, routes and rules do not come back the same: its routes list .* where they listed "1\.2\.3\.7 dev lo table 100/);
        return true;
      });
      assert.deepEqual(fs.readdirSync(images), []);
      assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
      finish(w.pid, w.dir);
    } finally {
      killTree(w.unshare);
      waitPid(w.unshare);
    }
  });

  test('CRIU 4.2 restores stasis\'s images of the namespace: the same addresses, routes and rules, and the sockets work', { skip: criuWorks() }, async () => {
    // The tree CRIU restores with -d is its child until CRIU exits: then it is this process's.
    setChildSubreaper();
    const w = start();
    const before = listing(w.pid);
    const images = tmpDir('netaddr-to-criu');
    await dump({ pid: w.pid, imagesDir: images, shellJob: true });
    waitPid(w.unshare);
    criu(['restore', '-d', '-j'], images, 'restore.log');
    try {
      assert.equal(listing(w.pid), before, 'CRIU\'s restored namespace lists other links, addresses, routes or rules');
      finish(w.pid, w.dir);
    } finally {
      killTree(w.pid);
      waitFor('the tree CRIU restored to end', () => {
        try {
          return waitPid(w.pid, true);
        } catch {
          return true; // not this process's child (yet)
        }
      });
    }
  });

  test('stasis restores CRIU 4.2\'s images of the namespace: the same addresses, routes, rules and sysctls, and the sockets work', { skip: criuWorks() }, async () => {
    const w = start('', true);
    const before = listing(w.pid);
    const images = tmpDir('netaddr-from-criu');
    criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
    waitPid(w.unshare);
    const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
    try {
      assert.equal(listing(r.pid), before, 'the namespace stasis restored from CRIU\'s images lists other links, addresses, routes, rules or sysctls');
      finishRestored(r.pid, w.dir);
    } finally {
      endTree(r.pid);
    }
  });

  // Two ends of a veth inside, one a port of a bridge inside, an address on the other; a
  // veth whose peer is outside (in this test's namespace); all up. No DAD: an IPv6 address
  // being checked is listed as tentative, and would be in the dump's trial.
  const DEVICES = `ip link add vin0 mtu 1400 type veth peer name vin1 mtu 1400
ip link add br1 type bridge
ip link set vin1 master br1
ip addr add 10.5.0.1/24 dev vin0
ip link set vin0 up
ip link set vin1 up
ip link set br1 up
`;

  test('a veth pair inside, a bridge with one of its ends as port, and a veth whose peer is outside come back with their ifindex, MAC, MTU, master and state; a socket on the veth\'s address works', async () => {
    execFileSync('sh', ['-c', 'ip link add hbr0 type bridge && ip link set hbr0 up'], { env: SBIN_ENV });
    const w = start(`sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0\n${DEVICES}`, false, '10.5.0.1');
    try {
      execFileSync('sh', ['-c', `ip link add vext0 type veth peer name hostv0 && ip link set vext0 netns ${w.pid} && nsenter -t ${w.pid} -n ip link set vext0 mtu 1300`], { env: SBIN_ENV });
      // The bridge has its carrier once its port is up.
      waitFor('the bridge to be up', () => /br1: <BROADCAST,MULTICAST,UP,LOWER_UP> .* state UP/.test(listing(w.pid)));
      const before = listing(w.pid);
      assert.match(before, /vin1@vin0: .* master br1 state UP/);
      assert.match(before, /vext0@if\d+: .* mtu 1300/);
      const images = tmpDir('netdev-img');
      await dump({ pid: w.pid, imagesDir: images });
      waitPid(w.unshare);
      verifyImages(images);
      await assert.rejects(restore({ imagesDir: images, detach: true }), /its peer was outside the namespace; name the new one with --external veth\[vext0\]:NAME/);
      const r = await restore({ imagesDir: images, detach: true, netExternals: new Map([['veth[vext0]', 'hostv1@hbr0']]) });
      try {
        // The peer outside is new: its ifindex there is not the old one's.
        const norm = (t: string) => t.replace(/@if\d+/g, '@if');
        assert.equal(norm(listing(r.pid)), norm(before), 'the restored namespace lists other devices, addresses, routes, rules or sysctls');
        assert.match(execFileSync('ip', ['link', 'show', 'hostv1'], { env: SBIN_ENV, encoding: 'utf8' }), /master hbr0/);
        finishRestored(r.pid, w.dir);
      } finally {
        endTree(r.pid);
      }
    } finally {
      endTree(w.unshare);
      spawnSync('ip', ['link', 'del', 'hbr0'], { env: SBIN_ENV });
    }
  });

  test('a veth whose peer was outside is restored as the veth made beforehand that --external netdev[IN]:OUT names, moved in at its ifindex with its name, MAC, MTU and address; a missing one fails the restore', async () => {
    const w = start();
    try {
      execFileSync('sh', ['-c', `ip link add vext0 type veth peer name hostv0 && ip link set vext0 netns ${w.pid} && nsenter -t ${w.pid} -n sh -c 'ip link set vext0 mtu 1300 address 02:00:00:00:06:01 && ip addr add 10.6.0.1/24 dev vext0'`], { env: SBIN_ENV });
      const before = listing(w.pid);
      assert.match(before, /vext0@if\d+: <BROADCAST,MULTICAST.*> mtu 1300 .*\n.* link\/ether 02:00:00:00:06:01 /);
      const images = tmpDir('netdev-premade-img');
      await dump({ pid: w.pid, imagesDir: images });
      waitPid(w.unshare);
      await assert.rejects(restore({ imagesDir: images, detach: true, netExternals: new Map([['netdev[vext0]', 'nosuch0']]) }), /the device nosuch0 to move in \(--external netdev\[vext0\]:nosuch0\) is not in stasis's namespace/);
      // Made beforehand with another MTU and MAC, at another ifindex than the image's.
      execFileSync('sh', ['-c', 'ip link add pre0 mtu 1450 type veth peer name hostp0'], { env: SBIN_ENV });
      const r = await restore({ imagesDir: images, detach: true, netExternals: new Map([['netdev[vext0]', 'pre0']]) });
      try {
        const norm = (t: string) => t.replace(/@if\d+/g, '@if').replace(/link-netnsid \d+/g, 'link-netnsid');
        assert.equal(norm(listing(r.pid)), norm(before), 'the restored namespace lists other devices, addresses, routes, rules or sysctls');
        assert.equal(spawnSync('ip', ['link', 'show', 'pre0'], { env: SBIN_ENV }).status, 1, 'pre0 is still in the host');
        assert.match(execFileSync('ip', ['link', 'show', 'hostp0'], { env: SBIN_ENV, encoding: 'utf8' }), /hostp0@if\d+:/);
        finishRestored(r.pid, w.dir);
      } finally {
        endTree(r.pid);
      }
    } finally {
      endTree(w.unshare);
      spawnSync('ip', ['link', 'del', 'hostp0'], { env: SBIN_ENV });
    }
  });

  test('an ifb device, and a bridge whose MAC came from nowhere (its carrier on with no port, which a bridge given its MAC is not), are refused at dump, and the tree carries on', async () => {
    for (const [extra, pattern] of [
      ['ip link add ifb7 type ifb\n', /it has device ifb7 of kind ifb, which stasis cannot make again/],
      ['ip link add br7 type bridge\nip link set br7 up\n', /its devices, addresses, routes and rules do not come back the same: its devices list "\d+: br7: <NO-CARRIER.*\(br7: a bridge with no port loses its carrier when it is given its MAC address/],
    ] as const) {
      const w = start(extra);
      try {
        const images = tmpDir('netdev-refused');
        await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
          assert.ok(e instanceof StasisError, String(e));
          assert.equal(e.code, 'E_UNSUPPORTED', e.message);
          assert.match(e.message, pattern);
          return true;
        });
        assert.deepEqual(fs.readdirSync(images), []);
        finish(w.pid, w.dir);
      } finally {
        killTree(w.unshare);
        waitPid(w.unshare);
      }
    }
  });

  test('CRIU 4.2 restores stasis\'s images of a namespace with a veth pair, a bridge and a veth whose peer is outside', { skip: criuWorks() }, async () => {
    setChildSubreaper();
    execFileSync('sh', ['-c', 'ip link add hbr0 type bridge && ip link set hbr0 up'], { env: SBIN_ENV });
    const w = start(`sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0\n${DEVICES}`, false, '10.5.0.1');
    try {
      execFileSync('sh', ['-c', `ip link add vext0 type veth peer name hostv0 && ip link set vext0 netns ${w.pid}`], { env: SBIN_ENV });
      waitFor('the bridge to be up', () => /br1: <BROADCAST,MULTICAST,UP,LOWER_UP> .* state UP/.test(listing(w.pid)));
      const before = listing(w.pid);
      const images = tmpDir('netdev-to-criu');
      await dump({ pid: w.pid, imagesDir: images, shellJob: true });
      waitPid(w.unshare);
      criu(['restore', '-d', '-j', '--external', 'veth[vext0]:hostv1@hbr0'], images, 'restore.log');
      try {
        const norm = (t: string) => t.replace(/@if\d+/g, '@if');
        waitFor('the bridge CRIU restored to be up', () => /br1: <BROADCAST,MULTICAST,UP,LOWER_UP> .* state UP/.test(listing(w.pid)));
        assert.equal(norm(listing(w.pid)), norm(before), 'CRIU\'s restored namespace lists other devices, addresses, routes, rules or sysctls');
        assert.match(execFileSync('ip', ['link', 'show', 'hostv1'], { env: SBIN_ENV, encoding: 'utf8' }), /master hbr0/);
        finish(w.pid, w.dir);
      } finally {
        killTree(w.pid);
        waitFor('the tree CRIU restored to end', () => {
          try {
            return waitPid(w.pid, true);
          } catch {
            return true;
          }
        });
      }
    } finally {
      endTree(w.unshare);
      spawnSync('ip', ['link', 'del', 'hbr0'], { env: SBIN_ENV });
    }
  });
}
