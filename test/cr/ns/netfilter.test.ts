// A tree in a network namespace of its own (`unshare -n --fork`) with netfilter rules:
// iptables-legacy and ip6tables-legacy (a user chain, policies, counters) and nft's own tables
// (counters, a set), all of them letting in only what conntrack calls ESTABLISHED or a SYN.
// Its two tasks hold a TCP connection over loopback.
// Dumped with --tcp-established and restored, the new namespace lists the same rules with the
// same counters and the same conntrack entry, and the connection carries 200 more round trips
// through those rules: without its conntrack entry made again, the first packet would be NEW
// and not a SYN, and dropped. What conntrack netlink cannot make again (a UDP entry), a loose=0
// namespace, rules that do not load back the same (a set element that expires) and tables
// iptables-nft made are refused at dump, the tree left running. A dump that leaves the tree
// running leaves its rules as they were; CRIU 4.2 restores stasis's images, and stasis CRIU's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { compileWorkload, tmpDir, waitFor, verifyImages, sleepMs } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { parseConntrackMessages, setChildSubreaper, spawnTask, waitPid } from '../../../src/sys/index.js';
import { SBIN_ENV } from '../sockets/netns.js';
import { namespacesUnavailable, inPrivateProc, runInPrivateProc, childOf, killTree, assertExitsZero, endTree } from './private-proc.js';
import { criu, criuWorks, reapDumped } from '../interop/criu-tool.js';

const FLAG = 'STASIS_NETFILTER_TEST';
const has = (p: string) => spawnSync('sh', ['-c', `command -v ${p}`], { env: SBIN_ENV }).status === 0;
const missing = ['iptables-legacy', 'ip6tables-legacy', 'iptables-nft', 'nft', 'ip', 'nsenter'].find((p) => !has(p));
const why = namespacesUnavailable() || (missing ? `${missing} is not installed` : false)
  || (fs.existsSync('/proc/net/nf_conntrack') || spawnSync('modprobe', ['nf_conntrack']).status === 0 ? false : 'no nf_conntrack');

// Only ESTABLISHED packets and SYNs get in, in every table that sees them.
const SETUP = `set -e
ip link set lo up
iptables-legacy -w -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT
iptables-legacy -w -A INPUT -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
iptables-legacy -w -A INPUT -p udp --dport 9999 -j ACCEPT
iptables-legacy -w -P INPUT DROP
ip6tables-legacy -w -N STASIS
ip6tables-legacy -w -A STASIS -m conntrack --ctstate ESTABLISHED -j ACCEPT
ip6tables-legacy -w -A STASIS -p tcp --syn -j ACCEPT
ip6tables-legacy -w -A INPUT -j STASIS
ip6tables-legacy -w -P INPUT DROP
ip6tables-legacy -w -P FORWARD DROP
nft -f - <<'EOF'
table inet stasis_t {
	set ports { type inet_service; elements = { 22, 80 } }
	chain in {
		type filter hook input priority 10; policy drop;
		ct state established counter accept
		tcp flags & (syn | ack) == syn ct state new counter accept
		udp dport 9999 accept
		tcp dport @ports drop
	}
}
EOF
`;

if (!inPrivateProc(FLAG)) {
  test('netfilter: every test, in a private mount namespace with /proc/sys writable', { skip: why }, () => {
    runInPrivateProc(import.meta.url, FLAG, /^# fail 0$/m);
  });
} else {
  /** Starts the workload under `unshare -n --fork` after the rules (and `extra`) are set; its pid once ready. */
  /** `setsid`: the tree leads a session of its own (CRIU refuses a tree whose session leader is outside its pid namespace, as under CI's). */
  function start(mode: 'v4' | 'v6' | 'udp', extra = '', setsid = false): { unshare: number; pid: number; dir: string } {
    const dir = tmpDir('nfconn');
    const unshare = spawnTask(['unshare', '-n', '--fork', ...(setsid ? ['setsid'] : []), 'sh', '-c', `${SETUP}${extra}\nexec "$@" >/dev/null 2>&1`, 'sh', compileWorkload('nfconn'), dir, mode], {
      cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` }, env: SBIN_ENV,
    });
    const ready = waitFor('nfconn ready', () => fs.existsSync(`${dir}/ready`) || waitPid(unshare, true));
    if (ready !== true) throw new Error(`nfconn did not start: ${fs.readFileSync(`${dir}/stderr.log`, 'utf8')} ${JSON.stringify(ready)}`);
    return { unshare, pid: childOf(unshare)!, dir };
  }

  const inNs = (pid: number, cmd: string) => execFileSync('nsenter', ['-t', String(pid), '-n', 'sh', '-c', cmd], { env: SBIN_ENV, encoding: 'utf8' });

  /** Every rule with its counters, and the conntrack entries without their timeouts and use counts. */
  function listing(pid: number): { rules: string; conntrack: string[] } {
    const rules = inNs(pid, 'iptables-legacy-save -c; ip6tables-legacy-save -c; nft list ruleset').split('\n').filter((l) => !l.startsWith('#')).join('\n');
    const conntrack = inNs(pid, 'cat /proc/net/nf_conntrack').trim().split('\n').filter(Boolean)
      .map((l) => l.trim().split(/\s+/).filter((_, i) => i !== 4).join(' ').replace(/ use=\d+/, ''));
    return { rules, conntrack };
  }

  const COUNTER = /\[(\d+):(\d+)\]|packets (\d+) bytes (\d+)/g;
  const uncounted = (rules: string) => rules.replace(COUNTER, (m) => (m.startsWith('[') ? '[n:n]' : 'packets n bytes n'));
  /** Every packet count of a listing, in order. */
  const counters = (rules: string) => [...rules.matchAll(COUNTER)].map((m) => Number(m[1] ?? m[3]));

  async function roundTrip(mode: 'v4' | 'v6', networkLock: 'iptables' | 'nftables'): Promise<void> {
    const w = start(mode);
    sleepMs(200); // the last ACKs are counted
    const before = listing(w.pid);
    assert.equal(before.conntrack.length, 1, before.conntrack.join('\n'));
    assert.match(before.conntrack[0]!, /ESTABLISHED .*\[ASSURED\]/);
    const images = tmpDir('nfconn-img');
    try {
      await dump({ pid: w.pid, imagesDir: images, tcpEstablished: true, networkLock });
    } catch (err) {
      killTree(w.unshare);
      waitPid(w.unshare);
      throw err;
    }
    waitPid(w.unshare);
    verifyImages(images);
    const files = fs.readdirSync(images);
    for (const f of ['iptables-', 'ip6tables-', 'nftables-', 'netns-ct-', 'netns-exp-']) assert.ok(files.some((x) => x.startsWith(f)), `no ${f}*: ${files.join(' ')}`);
    // CRIU's netns-ct image: the one entry, as ctnetlink sent it.
    const ct = parseConntrackMessages(fs.readFileSync(path.join(images, files.find((x) => x.startsWith('netns-ct-'))!)));
    assert.deepEqual(ct.map((e) => [e.orig.proto, e.tcp?.state]), [[6, 3]]);
    const nft = fs.readFileSync(path.join(images, files.find((x) => x.startsWith('nftables-'))!), 'utf8');
    assert.doesNotMatch(nft, /CRIU|0xc114/i, 'the network lock was dumped with the rules');
    // The images hold the rules as they were, counters included.
    const saved = ['iptables-', 'ip6tables-', 'nftables-'].map((f) => fs.readFileSync(path.join(images, files.find((x) => x.startsWith(f))!), 'utf8')).join('');
    assert.equal(saved.split('\n').filter((l) => !l.startsWith('#')).join('\n').trim(), before.rules.trim());
    const r = await restore({ imagesDir: images, detach: true, tcpEstablished: true });
    try {
      // The restore loaded them with those counters (it lists them and compares); leaving repair
      // mode sends a window probe each way, which the rules count: the counters only grew.
      const after = listing(r.pid);
      assert.deepEqual({ ...after, rules: uncounted(after.rules) }, { ...before, rules: uncounted(before.rules) }, 'the restored namespace lists other rules or conntrack entries');
      const grew = counters(after.rules).map((n, i) => n - counters(before.rules)[i]!);
      assert.ok(grew.every((d) => d >= 0 && d <= 16), `counters changed by ${grew.join(' ')}`);
      // The packets went through the rules: the counter of the established rule grew by the 400 messages at least.
      const counted = () => Number(/^\t\tct state established counter packets (\d+)/m.exec(inNs(r.pid, 'nft list ruleset'))?.[1]);
      const seen = counted();
      fs.writeFileSync(`${w.dir}/go`, '');
      waitFor('the result', () => fs.existsSync(`${w.dir}/result`), 30000);
      assert.match(fs.readFileSync(`${w.dir}/result`, 'utf8'), /^PASS/);
      assert.ok(counted() >= seen + 400, `the established rule counted ${counted() - seen} packets after restore`);
      fs.writeFileSync(`${w.dir}/end`, '');
      assertExitsZero(r.pid);
    } finally {
      endTree(r.pid);
    }
  }

  test('a TCP connection of a tree in its own network namespace with iptables-legacy, ip6tables-legacy and nftables rules comes back through the same rules and conntrack entry (IPv4, iptables lock)', async () => {
    await roundTrip('v4', 'iptables');
  });

  test('the same over IPv6, locked with nftables', async () => {
    await roundTrip('v6', 'nftables');
  });

  test('a dump that leaves the tree running leaves its rules as they were: the INPUT chain iptables-nft made for the lock is gone again', async () => {
    const w = start('v4', 'nft add table ip filter\nnft "add chain ip filter OUTPUT { type filter hook output priority 0; }"\n');
    try {
      sleepMs(200);
      const before = listing(w.pid);
      assert.doesNotMatch(before.rules, /table ip filter \{\n\tchain INPUT/, 'the namespace has no nf_tables INPUT chain of ip filter to start with');
      await dump({ pid: w.pid, imagesDir: tmpDir('nfconn-lr-img'), tcpEstablished: true, leaveRunning: true });
      const after = listing(w.pid);
      assert.equal(uncounted(after.rules), uncounted(before.rules));
      fs.writeFileSync(`${w.dir}/go`, '');
      waitFor('the result', () => fs.existsSync(`${w.dir}/result`), 30000);
      assert.match(fs.readFileSync(`${w.dir}/result`, 'utf8'), /^PASS/);
    } finally {
      killTree(w.unshare);
      waitPid(w.unshare);
    }
  });

  test('CRIU 4.2 restores stasis\'s images of the namespace: the same rules, counters and conntrack entry, and the connection carries on through them', { skip: criuWorks() }, async () => {
    // The tree CRIU restores with -d is its child until CRIU exits: then it is this process's.
    setChildSubreaper();
    const w = start('v4');
    sleepMs(200);
    const before = listing(w.pid);
    const images = tmpDir('nfconn-to-criu');
    await dump({ pid: w.pid, imagesDir: images, tcpEstablished: true, shellJob: true });
    waitPid(w.unshare);
    criu(['restore', '-d', '-j', '--tcp-established'], images, 'restore.log');
    try {
      // CRIU locks the new namespace itself with ip6tables-restore (iptables-nft here) and leaves the empty table it made.
      const after = listing(w.pid);
      after.rules = after.rules.replace(/\ntable ip6? filter \{\n\}/g, '');
      assert.deepEqual({ ...after, rules: uncounted(after.rules) }, { ...before, rules: uncounted(before.rules) }, 'CRIU\'s restored namespace lists other rules or conntrack entries');
      fs.writeFileSync(`${w.dir}/go`, '');
      waitFor('the result', () => fs.existsSync(`${w.dir}/result`), 30000);
      assert.match(fs.readFileSync(`${w.dir}/result`, 'utf8'), /^PASS/);
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

  // CRIU 4.2's netns-exp image holds the conntrack table a second time (it asks for the
  // expectations with the conntrack subsystem's number), and its nftables image its own lock.
  for (const lock of ['iptables', 'nftables'] as const) {
    test(`stasis restores CRIU 4.2's images of the namespace (${lock} lock): the same rules and conntrack entry, and the connection carries on through them`, { skip: criuWorks() }, async () => {
      setChildSubreaper();
      const w = start('v4', '', true);
      sleepMs(200);
      const before = listing(w.pid);
      const images = tmpDir('nfconn-from-criu');
      try {
        criu(['dump', '-t', String(w.pid), '-j', '--tcp-established', '--network-lock', lock], images, 'dump.log');
      } finally {
        killTree(w.unshare);
        waitPid(w.unshare);
      }
      reapDumped(images); // the root's child, this process's as subreaper
      const exp = fs.readdirSync(images).find((f) => f.startsWith('netns-exp-'));
      assert.ok(exp && fs.statSync(path.join(images, exp)).size > 0, 'CRIU\'s netns-exp image is empty: the test would prove nothing');
      const r = await restore({ imagesDir: images, detach: true, tcpEstablished: true, shellJob: true });
      try {
        assert.equal(r.pid, w.pid);
        // CRIU locks with iptables-nft: what its unlock leaves of that (empty INPUT and OUTPUT chains of ip and ip6 filter) aside.
        const after = listing(r.pid);
        after.rules = after.rules.replace(/\ntable ip6? filter \{\n\tchain INPUT \{\n\t\ttype filter hook input priority filter; policy accept;\n\t\}\n\n\tchain OUTPUT \{\n\t\ttype filter hook output priority filter; policy accept;\n\t\}\n\}/g, '');
        assert.deepEqual({ ...after, rules: uncounted(after.rules) }, { ...before, rules: uncounted(before.rules) }, 'the restored namespace lists other rules or conntrack entries');
        fs.writeFileSync(`${w.dir}/go`, '');
        waitFor('the result', () => fs.existsSync(`${w.dir}/result`), 30000);
        assert.match(fs.readFileSync(`${w.dir}/result`, 'utf8'), /^PASS/);
        fs.writeFileSync(`${w.dir}/end`, '');
        assertExitsZero(r.pid);
      } finally {
        endTree(r.pid);
      }
    });
  }

  /** A dump of `pid` that must be refused naming `pattern`, leaving it running and untraced. */
  async function refused(pid: number, pattern: RegExp): Promise<void> {
    const images = tmpDir('nf-refused');
    await assert.rejects(dump({ pid, imagesDir: images, tcpEstablished: true }), (e: unknown) => {
      assert.ok(e instanceof StasisError, String(e));
      assert.equal(e.code, 'E_UNSUPPORTED', e.message);
      assert.match(e.message, pattern);
      return true;
    });
    assert.deepEqual(fs.readdirSync(images), []);
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
  }

  test('a UDP conntrack entry, nf_conntrack_tcp_loose=0 and a set element that expires are refused, and the tree carries on', async () => {
    const cases: [mode: 'v4' | 'udp', extra: string, pattern: RegExp][] = [
      ['udp', '', /connection tracking entry 127\.0\.0\.1:9999 -> 127\.0\.0\.1:9999 cannot be restored: it is of protocol 17/],
      ['v4', 'sysctl -q -w net.netfilter.nf_conntrack_tcp_loose=0\n', /sysctls of its own: net\.netfilter\.nf_conntrack_tcp_loose = 0 \(a new namespace has 1\)/],
      // nft lists iptables-nft's x_tables matches translated and loads them back as its own: iptables-nft would not know the table again.
      ['v4', 'iptables-nft -A OUTPUT -o lo -p tcp -m conntrack --ctstate ESTABLISHED -j ACCEPT\n', /nf_tables table\(s\) ip filter were made by iptables-nft, which would not know them again/],
      ['v4', 'nft add set inet stasis_t gone "{ type ipv4_addr; flags timeout; }"\nnft add element inet stasis_t gone "{ 10.9.9.9 timeout 1h }"\n', /netfilter rules do not load back the same \(nft list ruleset prints .*expires/],
    ];
    for (const [mode, extra, pattern] of cases) {
      const w = start(mode, extra);
      try {
        await refused(w.pid, pattern);
        fs.writeFileSync(`${w.dir}/go`, '');
        waitFor('the result', () => fs.existsSync(`${w.dir}/result`), 30000);
        assert.match(fs.readFileSync(`${w.dir}/result`, 'utf8'), /^PASS/, 'the tree did not carry on after the refusal');
      } finally {
        killTree(w.unshare);
        waitPid(w.unshare);
      }
    }
  });
}
