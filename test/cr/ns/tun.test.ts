// Tun files and their devices, in a tree's network namespace of its own (`unshare -n --fork`,
// the workload tun.c): a file never attached, one on a tun with an address, a socket buffer,
// a header size and an owner of its own, two queues of a multi-queue tun (one detached), one
// on a tap that is up, and a persistent tap no file holds. Dumped and restored (by stasis, and
// by CRIU 4.2 from stasis's images), the new namespace lists the same devices with their
// queues, persistence, MAC and state, every fd is /dev/net/tun at its number again, and the
// workload checks that each file is attached as it was (a datagram to the tun's peer comes
// out of its file), that the detached queue still is, and that it carries on. A tun file of
// stasis's own network namespace, a device with a queue held outside the tree, and a file with
// a packet queued for its reader are refused at dump, and the tree carries on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compileWorkload, tmpDir, waitFor, verifyImages } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import {
  closeFd, connectInet, inNamespace, sendRaw, setChildSubreaper, socket, spawnTask, tunSetIff, waitPid,
  AF_INET, CLONE_NEWNET, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TUN, SOCK_CLOEXEC, SOCK_DGRAM,
} from '../../../src/sys/index.js';
import { readImage } from '../../../src/image/index.js';
import { FdTypes } from '../../../src/image/gen/stasis/fdinfo_pb.js';
import { NdType } from '../../../src/image/gen/stasis/netdev_pb.js';
import { SBIN_ENV } from '../sockets/netns.js';
import { namespacesUnavailable, inPrivateProc, childOf, killTree, assertExitsZero, endTree } from './private-proc.js';
import { criu, criuWorks } from '../interop/criu-tool.js';

const FLAG = 'STASIS_TUN_TEST';
const has = (p: string) => spawnSync('sh', ['-c', `command -v ${p}`], { env: SBIN_ENV }).status === 0;
const missing = ['ip', 'nsenter', 'sysctl'].find((p) => !has(p));
const why = namespacesUnavailable() || (missing ? `${missing} is not installed` : false) || (fs.existsSync('/dev/net/tun') ? false : 'no /dev/net/tun');
const FDS = [10, 11, 12, 13, 14];

if (!inPrivateProc(FLAG)) {
  // In a network namespace of its own too: a tree there shares it with stasis (the refused case).
  test('tun: every test, in private mount and network namespaces with /proc/sys writable', { skip: why }, () => {
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
  /** Starts the workload (under `unshare -n --fork` unless `shared`); its pid once ready. */
  function start(shared = false, session = false, args: string[] = []): { top: number; pid: number; dir: string } {
    const dir = tmpDir('tun');
    const wl = compileWorkload('tun');
    const argv = shared ? [wl, dir, ...args] : ['unshare', '-n', '--fork', ...(session ? ['setsid'] : []), 'sh', '-c', 'ip link set lo up && exec "$@" >/dev/null 2>&1', 'sh', wl, dir, ...args];
    const top = spawnTask(argv, { cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` }, env: SBIN_ENV });
    const ready = waitFor('tun ready', () => fs.existsSync(`${dir}/ready`) || waitPid(top, true));
    if (ready !== true) throw new Error(`tun did not start: ${fs.readFileSync(`${dir}/stderr.log`, 'utf8')} ${JSON.stringify(ready)}`);
    return { top, pid: shared ? top : childOf(top)!, dir };
  }

  /** What the namespace of `pid` lists of its devices (queues, persistence, MAC, state) and addresses. */
  const listing = (pid: number) => execFileSync('nsenter', ['-t', String(pid), '-n', 'sh', '-c', 'ip -d link show; ip addr show; ip route show table all'], { env: SBIN_ENV, encoding: 'utf8' });

  /**
   * A listing with each tun device that has its carrier listed operstate UP where it lists
   * UNKNOWN: a device made with its file attached never has it worked out, a restored one loses
   * its carrier for a moment, and the kernel works it out up to a second later; the one
   * difference stasis lets through (ns/net.ts).
   */
  const operUp = (l: string) => l.replace(/^(\d+: (?:tsq0|tmq0|tap0): <[^>]*LOWER_UP[^>]*>.* state )UNKNOWN /gm, '$1UP ');
  /** As operUp(), and each device's IPv6 address generation mode left out: CRIU 4.2 brings a device up before it sets disable_ipv6, and the kernel makes a tun's mode random then (its own restore does so too). */
  const criuSees = (l: string) => operUp(l).replace(/ addrgenmode \w+/g, '');

  /** Lets the workload of `dir` check itself; it must pass. */
  function finish(dir: string): void {
    fs.writeFileSync(`${dir}/go`, '');
    waitFor('the result', () => fs.existsSync(`${dir}/result`), 30000);
    assert.match(fs.readFileSync(`${dir}/result`, 'utf8'), /^PASS/);
    fs.writeFileSync(`${dir}/end`, '');
  }

  /** The fds of the workload as /proc shows them: each a link to /dev/net/tun, and fd 11 nonblocking. */
  function assertFds(pid: number): void {
    for (const fd of FDS) assert.equal(fs.readlinkSync(`/proc/${pid}/fd/${fd}`), '/dev/net/tun', `fd ${fd}`);
    const flags = parseInt(/^flags:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/11`, 'utf8'))![1]!, 8);
    assert.ok(flags & 0o4000, `fd 11 has flags 0${flags.toString(8)}, without O_NONBLOCK`);
  }

  test('tun files come back at their fds, attached to devices made again with their flags, queues, persistence, MAC and state; the detached queue is still detached and the tree carries on', async () => {
    const w = start();
    const images = tmpDir('tun-img');
    let before = '';
    try {
      before = listing(w.pid);
      assert.match(before, /tmq0: .*\n.*\n.*tun type tun pi off vnet_hdr off multi_queue numqueues 1 numdisabled 1 persist off/);
      assert.match(before, /tper0: .*\n.*\n.*tun type tap pi on vnet_hdr off persist on group 4343/);
      await dump({ pid: w.pid, imagesDir: images });
    } catch (err) {
      endTree(w.top);
      throw err;
    }
    waitPid(w.top);
    verifyImages(images);
    // CRIU's layout: a REG entry of /dev/net/tun and a TUNF entry of the same id for each file.
    const files = readImage(images, 'files', undefined);
    const tunf = files.filter((f) => f.type === FdTypes.TUNF);
    assert.deepEqual(tunf.map((f) => [f.tunf?.netdev, f.tunf?.detached]).sort(), [['', false], ['tap0', false], ['tmq0', false], ['tmq0', true], ['tsq0', false]]);
    for (const t of tunf) assert.equal(files.find((f) => f.id === t.id && f.type === FdTypes.REG)?.reg?.name, '/dev/net/tun');
    const netdev = fs.readdirSync(images).find((f) => /^netdev-\d+\.img$/.test(f))!;
    const devs = readImage(images, 'netdev', Number(/\d+/.exec(netdev)![0]));
    assert.deepEqual(devs.filter((d) => d.type === NdType.TUN).map((d) => [d.name, d.tun?.flags, d.tun?.owner, d.tun?.group, d.tun?.sndbuf, d.tun?.vnethdr]).sort(), [
      ['tap0', 0x1002, -1, -1, 0x7fffffff, 10], ['tmq0', 0x1101, -1, -1, 0x7fffffff, 10], ['tper0', 0x802, -1, 4343, 0x7fffffff, 10], ['tsq0', 0x1001, 4242, -1, 65536, 12],
    ]);
    const r = await restore({ imagesDir: images, detach: true });
    try {
      assert.equal(operUp(listing(r.pid)), operUp(before), 'the restored namespace lists other devices or addresses');
      assertFds(r.pid);
      finish(w.dir);
      assertExitsZero(r.pid);
    } finally {
      endTree(r.pid);
    }
  });

  test('a tun file of stasis\'s own network namespace is refused at dump, and the tree carries on', async () => {
    const w = start(true);
    try {
      const images = tmpDir('tun-refused');
      await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
        assert.ok(e instanceof StasisError, String(e));
        assert.equal(e.code, 'E_UNSUPPORTED', e.message);
        assert.match(e.message, /^Cannot dump fd 10 of pid \d+: it is a tun file \(attached to no device\) of network namespace net:\[\d+\] \(stasis's own\), which is not dumped with the tree/);
        return true;
      });
      assert.deepEqual(fs.readdirSync(images), []);
      assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
      finish(w.dir);
    } finally {
      endTree(w.top);
      spawnSync('sh', ['-c', 'ip link del tper0; ip link del tnew0'], { env: SBIN_ENV, stdio: 'ignore' });
    }
  });

  test('a multi-queue tun device whose queue a file outside the tree holds is refused at dump, and the tree carries on', async () => {
    const w = start();
    try {
      // This process's file on tmq0, opened in the tree's namespace: a third queue, not the tree's.
      const outside = inNamespace(`/proc/${w.pid}/ns/net`, 'net', CLONE_NEWNET, () => {
        const fd = fs.openSync('/dev/net/tun', 'r+');
        tunSetIff(fd, 'tmq0', IFF_TUN | IFF_MULTI_QUEUE | IFF_NO_PI);
        return fd;
      });
      const images = tmpDir('tun-outside');
      await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
        assert.ok(e instanceof StasisError, String(e));
        assert.equal(e.code, 'E_UNSUPPORTED', e.message);
        assert.match(e.message, /its tun device tmq0 has 2 queues attached and 1 detached, of which the tree's files hold 1 and 1: files outside the tree hold the others/);
        return true;
      });
      assert.deepEqual(fs.readdirSync(images), []);
      fs.closeSync(outside);
      finish(w.dir);
    } finally {
      endTree(w.top);
    }
  });

  test('a tun file with a packet queued for its reader is refused at dump, and the tree carries on', async () => {
    const w = start();
    try {
      // A datagram routed to tsq0 waits in fd 11's queue (the workload reads it later, and passes it over).
      inNamespace(`/proc/${w.pid}/ns/net`, 'net', CLONE_NEWNET, () => {
        const s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC);
        try {
          connectInet(s, AF_INET, [0x02004d0a], 9); // 10.77.0.2, one word as the kernel keeps it
          const b = Buffer.from('queued');
          assert.equal(sendRaw(s, b, 0, b.length, 0), b.length);
        } finally {
          closeFd(s);
        }
      });
      const images = tmpDir('tun-queued');
      await assert.rejects(dump({ pid: w.pid, imagesDir: images }), (e: unknown) => {
        assert.ok(e instanceof StasisError, String(e));
        assert.equal(e.code, 'E_UNSUPPORTED', e.message);
        assert.match(e.message, /^Cannot dump fd 11 of pid \d+: it is a tun file of tsq0 with packets queued for its reader/);
        return true;
      });
      assert.deepEqual(fs.readdirSync(images), []);
      finish(w.dir);
    } finally {
      endTree(w.top);
    }
  });

  test('CRIU 4.2 restores stasis\'s images of the tun files and devices, and the tree carries on', { skip: criuWorks() }, async () => {
    // The tree CRIU restores with -d is its child until CRIU exits: then it is this process's.
    setChildSubreaper();
    // CRIU 4.2 sets a device's socket buffer before its files are attached, which then have the default.
    const w = start(false, true, ['nobuf']);
    const images = tmpDir('tun-to-criu');
    let before = '';
    try {
      before = listing(w.pid);
      await dump({ pid: w.pid, imagesDir: images, shellJob: true });
    } catch (err) {
      endTree(w.top);
      throw err;
    }
    waitPid(w.top);
    criu(['restore', '-d', '-j'], images, 'restore.log');
    try {
      assert.equal(criuSees(listing(w.pid)), criuSees(before), 'CRIU\'s restored namespace lists other devices or addresses');
      assertFds(w.pid);
      finish(w.dir);
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

  test('stasis restores CRIU 4.2\'s images of the tun files and devices, and the tree carries on', { skip: criuWorks() }, async () => {
    const w = start(false, true);
    const images = tmpDir('tun-from-criu');
    let before = '';
    try {
      before = listing(w.pid);
      criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
    } catch (err) {
      endTree(w.top);
      throw err;
    }
    waitPid(w.top);
    const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
    try {
      assert.equal(operUp(listing(r.pid)), operUp(before), 'the namespace stasis restored from CRIU\'s images lists other devices or addresses');
      assertFds(r.pid);
      finish(w.dir);
      assertExitsZero(r.pid);
    } finally {
      endTree(r.pid);
    }
  });
}
