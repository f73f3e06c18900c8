// A tree in namespaces of its own, as `unshare --fork` makes them: the UTS namespace with its
// names, the IPC namespace with a sysctl, the network namespace with lo up, the pid namespace
// (the root is pid 1 inside, its child pid 2, a flock held by the root), the cgroup namespace
// (every task at its root) and the time namespace (its clocks). After dump and restore the tree
// checks that it sees all of them again, and the test that they are namespaces of its own, not
// stasis's (the dumped ones are gone; the kernel may give the new ones the same inode numbers).
// A user namespace, a mount namespace given no --root (mount-ns.test.ts restores one given it)
// and a tree split across namespaces are refused at dump time, the tree left running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { compileWorkload, tmpDir, waitFor, verifyImages, sleepMs } from '../harness.js';
import { dump, preDump, restore, StasisError } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { spawnTask, waitPid, CLONE_NEWNET, nsOwnerInode } from '../../../src/sys/index.js';
import { SBIN_ENV } from '../sockets/netns.js';
import { namespacesUnavailable, inPrivateProc, runInPrivateProc, childOf, killTree } from './private-proc.js';

const FLAG = 'STASIS_NS_TEST';
const why = namespacesUnavailable();

if (!inPrivateProc(FLAG)) {
  test('namespaces: every test, in a private mount namespace with /proc/sys writable', { skip: why }, () => {
    runInPrivateProc(import.meta.url, FLAG, /^# fail 0$/m);
  });
} else {
  /** Starts `unshare --fork --KIND... WORKLOAD DIR CHECKS` (nsroot) and gives the workload's pid, once ready. */
  function startInNamespaces(kinds: string[], checks = kinds.join(','), workload = 'nsroot'): { unshare: number; pid: number; dir: string } {
    const dir = tmpDir(workload);
    // A time namespace well ahead of stasis's clocks: the workload checks it sees them still.
    // With maps a parent writes, the workload makes its namespaces itself (user first, owning them),
    // but for a pid namespace, which then the user namespace does not own.
    const flags = kinds.includes('usermap') ? (kinds.includes('pid') ? ['--pid'] : []) : kinds.flatMap((k) => (k === 'time' ? ['--time', '--monotonic=100000', '--boottime=200000']
      : k === 'user' ? ['--user', '--map-root-user'] : k === 'usermap' ? [] : [`--${k}`]));
    // Its uid 0 there is not stasis's: it must be able to write here.
    if (kinds.includes('usermap')) fs.chmodSync(dir, 0o777);
    const unshare = spawnTask(['unshare', '--fork', ...flags, compileWorkload(workload, workload === 'pidfds' ? ['-pthread'] : []), dir, checks], {
      cwd: dir, stdin: { path: '/dev/null' }, stdout: { path: `${dir}/stdout.log` }, stderr: { path: `${dir}/stderr.log` },
    });
    if (kinds.includes('usermap')) {
      // Maps of several ranges, written by the parent (setgroups left allowed), as a container engine writes them.
      // The workload makes the namespace itself.
      const child = waitFor('the child of unshare', () => childOf(unshare));
      waitFor('its user namespace', () => fs.existsSync(`${dir}/unshared`) || waitPid(unshare, true));
      fs.writeFileSync(`/proc/${child}/uid_map`, USERMAP_UIDS);
      fs.writeFileSync(`/proc/${child}/gid_map`, USERMAP_GIDS);
    }
    const ready = waitFor(`${workload} ready`, () => fs.existsSync(`${dir}/ready`) || waitPid(unshare, true));
    if (ready !== true) throw new Error(`${workload} did not start: ${fs.readFileSync(`${dir}/stderr.log`, 'utf8')} ${JSON.stringify(ready)}`);
    return { unshare, pid: childOf(unshare)!, dir };
  }

  const USERMAP_UIDS = '0 100000 1000\n1000 200000 10\n', USERMAP_GIDS = '0 100000 1000\n1000 300000 5\n';
  const nsName = (k: string) => (k === 'usermap' ? 'user' : k);

  /** What stasis reads of the user namespace of `pid`: its maps and setgroups. */
  function userMaps(pid: number): string {
    return ['uid_map', 'gid_map', 'setgroups'].map((f) => fs.readFileSync(`/proc/${pid}/${f}`, 'utf8')).join('');
  }

  function nsOf(pid: number | 'self', kind: string): string {
    return fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
  }

  async function roundTrip(kinds: string[], incremental = false, start = () => startInNamespaces(kinds), checkImages: (dir: string) => void = () => {}): Promise<void> {
    const w = start();
    const images = tmpDir('nsroot-img');
    const user = kinds.some((k) => nsName(k) === 'user');
    const maps = user ? userMaps(w.pid) : '';
    if (incremental) {
      // A pre-dump first: its images are named by the pids the tasks see, as the dump's are.
      const pre = tmpDir('nsroot-pre');
      await preDump({ pid: w.pid, imagesDir: pre });
      assert.ok(fs.readdirSync(pre).includes('pagemap-1.img'), fs.readdirSync(pre).join(' '));
      const d = await dump({ pid: w.pid, imagesDir: images, prevImagesDir: pre, trackMem: true });
      assert.ok(d.pagesSkippedParent > 0, 'the dump wrote every page again: it did not find the pre-dump\'s');
    } else await dump({ pid: w.pid, imagesDir: images });
    waitPid(w.unshare); // its child was killed: it ends too
    verifyImages(images);
    checkImages(images);
    const files = fs.readdirSync(images);
    for (const [k, img] of [['uts', 'utsns-'], ['ipc', 'ipcns-var-'], ['net', 'netdev-'], ['user', 'userns-']] as const) {
      assert.equal(files.some((f) => f.startsWith(img)), kinds.some((x) => nsName(x) === k), `${img}*.img for ${kinds.join(',')}: ${files.join(' ')}`);
    }
    const r = await restore({ imagesDir: images, detach: true });
    try {
      if (!kinds.includes('pid')) assert.equal(r.pid, w.pid);
      for (const k of kinds.map(nsName)) {
        const now = nsOf(r.pid, k);
        assert.notEqual(now, nsOf('self', k), `the restored tree is in stasis's ${k} namespace`);
      }
      if (user) {
        assert.equal(userMaps(r.pid), maps, 'the restored user namespace has other maps');
        // Every other namespace of its own is owned by it (NS_GET_USERNS).
        const userIno = fs.statSync(`/proc/${r.pid}/ns/user`).ino;
        for (const k of kinds.map(nsName).filter((x) => x !== 'user')) {
          assert.equal(nsOwnerInode(`/proc/${r.pid}/ns/${k}`), userIno, `the restored ${k} namespace is not owned by the restored user namespace`);
        }
      }
      fs.writeFileSync(`${w.dir}/go`, '');
      const until = Date.now() + 20000;
      let st: ReturnType<typeof waitPid> = null;
      while (!(st = waitPid(r.pid, true)) && Date.now() < until) sleepMs(5);
      assert.deepEqual(st && { kind: st.kind, code: 'code' in st ? st.code : undefined }, { kind: 'exited', code: 0 }, fs.existsSync(`${w.dir}/result`) ? fs.readFileSync(`${w.dir}/result`, 'utf8') : 'no result');
      assert.match(fs.readFileSync(`${w.dir}/result`, 'utf8'), /^PASS/);
    } finally {
      try {
        killTree(r.pid);
        waitPid(r.pid);
      } catch {
        /* ended */
      }
    }
  }

  test('a tree in its own UTS, IPC and network namespaces comes back in new ones with its names, its msgmax and lo up', async () => {
    await roundTrip(['uts', 'ipc', 'net']);
  });

  test('a tree in its own UTS namespace alone comes back with its names', async () => {
    await roundTrip(['uts']);
  });

  test('a tree in its own pid namespace comes back in a new one: the root is pid 1 inside and its child pid 2', async () => {
    await roundTrip(['pid']);
  });

  test('pidfds of a tree in its own pid namespace come back on its tasks and threads, and those of reaped processes on stand-ins inside it (PIDFD_GET_INFO answers there)', async () => {
    await roundTrip(['pid'], false, () => startInNamespaces(['pid'], 'all', 'pidfds'));
  });

  test('a tree in its own pid namespace is pre-dumped, dumped on top and restored from the chain', async () => {
    await roundTrip(['pid'], true);
  });

  test('a tree in its own pid, UTS, IPC and network namespaces comes back in new ones of each', async () => {
    await roundTrip(['pid', 'uts', 'ipc', 'net']);
  });

  test('a tree in a user namespace of its own (unshare -U --map-root-user) comes back in a new one with the same maps and setgroups, uid 0 inside, its capabilities there and its file owned as before', async () => {
    await roundTrip(['user']);
  });

  test('a tree in its own user, UTS, IPC and network namespaces comes back with the others owned by the new user namespace', async () => {
    await roundTrip(['user', 'uts', 'ipc', 'net']);
  });

  test('a tree in its own user, pid, UTS, IPC and network namespaces (unshare -U -p -u -i -n) comes back: pid 1 and 2 inside, uid 0, the maps, the namespaces owned by the new user namespace', async () => {
    await roundTrip(['user', 'pid', 'uts', 'ipc', 'net']);
  });

  test('a tree in its own user and pid namespaces is pre-dumped, dumped on top and restored from the chain', async () => {
    await roundTrip(['user', 'pid'], true);
  });

  test('threads and pidfds of a tree in its own user and pid namespaces come back at their tids', async () => {
    await roundTrip(['user', 'pid'], false, () => startInNamespaces(['user', 'pid'], 'all', 'pidfds'));
  });

  test('a user namespace whose maps of several ranges a parent wrote comes back with them: the root is uid 0 there, its child uid 1000 of the second range, their files owned as before', async () => {
    const w = startInNamespaces(['usermap']);
    // stasis's view: the ids the tasks have are those of the map's ranges.
    assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /^Uid:\s+100000\s+100000/m);
    assert.equal(fs.statSync(`${w.dir}/owned`).uid, 100000);
    await roundTrip(['usermap'], false, () => w);
    assert.equal(fs.statSync(`${w.dir}/owned-after`).uid, 100000, 'the restored root made its file as another uid');
  });

  test('a removed file held open and a memfd of a tree in a user namespace with maps of several ranges come back owned by the same ids there', async () => {
    const w = startInNamespaces(['usermap'], 'usermap,ghost');
    await roundTrip(['usermap'], false, () => w, (dir) => {
      const g = fs.readdirSync(dir).find((f) => /^ghost-file-[0-9a-f]+\.img$/.test(f));
      assert.ok(g, fs.readdirSync(dir).join(' '));
      const head = readImage(dir, 'ghost-file', parseInt(/-([0-9a-f]+)\.img$/.exec(g)![1]!, 16)).head;
      assert.deepEqual(head && [head.uid, head.gid], [0, 1000], 'the ghost\'s owner is not written as the namespace sees it');
      const m = readImage(dir, 'memfd-inode', undefined)[0];
      assert.deepEqual(m && [m.uid, m.gid], [0, 1000], 'the memfd\'s owner is not written as the namespace sees it');
    });
  });

  test('a SysV message queue of an IPC namespace owned by a user namespace with maps of several ranges comes back owned by the same ids there', async () => {
    const w = startInNamespaces(['usermap', 'ipc'], 'usermap,ipc,sysv');
    // The images hold the owners as the namespace sees them (CRIU's view): 1000, not stasis's 200000 and 300000.
    await roundTrip(['usermap', 'ipc'], false, () => w, (dir) => {
      const q = fs.readdirSync(dir).find((f) => /^ipcns-msg-\d+\.img$/.test(f));
      assert.ok(q, fs.readdirSync(dir).join(' '));
      const desc = readImage(dir, 'ipcns-msg', Number(/\d+/.exec(q)![0]))[0]?.entry.desc;
      assert.deepEqual(desc && [desc.uid, desc.gid], [1000, 1000]);
      const core = readImage(dir, 'core', w.pid)[0];
      assert.equal(core?.threadCore?.creds?.uid, 0, 'the root\'s credentials are not written as it sees them');
    });
  });

  test('a tree in its own user, pid and time namespaces comes back with its clocks carrying on, the time namespace owned by the new user namespace', async () => {
    await roundTrip(['user', 'pid', 'time']);
  });

  test('a tree in its own user and time namespaces, without a pid namespace, comes back with its clocks carrying on', async () => {
    await roundTrip(['user', 'time', 'uts']);
  });

  test('a tree in its own time namespace comes back in a new one whose clocks carry on from the dumped ones', async () => {
    await roundTrip(['time', 'pid']);
  });

  test('a tree at the root of a cgroup namespace of its own comes back at the root of a new one', async () => {
    await roundTrip(['cgroup', 'uts']);
  });

  test('a network namespace with a device stasis cannot make again (ifb) is refused; with --empty-ns net it is not looked into, and the restored tree joins the namespace it is given', async () => {
    // The workload checks only its names: lo is the test's here.
    const w = startInNamespaces(['net', 'uts'], 'uts');
    const holder = spawnTask(['unshare', '--net', 'sleep', '1000'], { stdin: { path: '/dev/null' } });
    try {
      const ip = (pid: number, ...args: string[]) => execFileSync('nsenter', ['-t', String(pid), '-n', 'ip', ...args], { env: SBIN_ENV, encoding: 'utf8' });
      ip(w.pid, 'link', 'add', 'stasist0', 'type', 'ifb');
      await refused(w.pid, /net namespace net:\[\d+\] of pid \d+: it has device stasist0 of kind ifb, which stasis cannot make again/);
      const images = tmpDir('nsroot-empty-img');
      await dump({ pid: w.pid, imagesDir: images, emptyNs: CLONE_NEWNET });
      waitPid(w.unshare);
      assert.equal(fs.readdirSync(images).some((f) => f.startsWith('netdev-')), false, 'the namespace was dumped');
      waitFor('the holder', () => nsOf(holder, 'net') !== nsOf('self', 'net'));
      const r = await restore({ imagesDir: images, detach: true, emptyNs: CLONE_NEWNET, joinNs: [{ ns: 'net', file: `/proc/${holder}/ns/net` }] });
      try {
        assert.equal(nsOf(r.pid, 'net'), nsOf(holder, 'net'), 'the restored tree is not in the namespace it was to join');
        assert.doesNotMatch(ip(r.pid, 'link'), /stasist0/);
        fs.writeFileSync(`${w.dir}/go`, '');
        const st = waitFor('the restored tree', () => waitPid(r.pid, true));
        assert.equal(st.kind === 'exited' && st.code, 0, fs.existsSync(`${w.dir}/result`) ? fs.readFileSync(`${w.dir}/result`, 'utf8') : 'no result');
      } finally {
        try {
          killTree(r.pid);
          waitPid(r.pid);
        } catch {
          /* ended */
        }
      }
    } finally {
      killTree(holder);
      waitPid(holder);
    }
  });

  test('an IPC namespace holding a POSIX message queue and a network namespace with a sysctl of its own are refused naming them (its netfilter rules are dumped: netfilter.test.ts)', async () => {
    const w = startInNamespaces(['ipc', 'net'], 'mqueue');
    try {
      await refused(w.pid, /ipc namespace ipc:\[\d+\] of pid \d+: it holds POSIX message queue\(s\) \/stasis-q/);
    } finally {
      killTree(w.unshare);
      waitPid(w.unshare);
    }
    // A socket of the tree's own network namespace is dumped now (netns-sockets.test.ts).
    const v = startInNamespaces(['net'], 'none');
    try {
      execFileSync('nsenter', ['-t', String(v.pid), '-n', 'sysctl', '-q', '-w', 'net.core.somaxconn=1234'], { env: SBIN_ENV });
      await refused(v.pid, /net namespace net:\[\d+\] of pid \d+: it has sysctls of its own: net\.core\.somaxconn = 1234/);
    } finally {
      killTree(v.unshare);
      waitPid(v.unshare);
    }
  });

  /** A dump of `pid` that must be refused naming `pattern`, leaving it running and untraced. */
  async function refused(pid: number, pattern: RegExp): Promise<void> {
    const images = tmpDir('ns-refused');
    await assert.rejects(dump({ pid, imagesDir: images }), (e: unknown) => {
      assert.ok(e instanceof StasisError, String(e));
      assert.equal(e.code, 'E_UNSUPPORTED', e.message);
      assert.match(e.message, pattern);
      return true;
    });
    assert.deepEqual(fs.readdirSync(images), []);
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
    assert.match(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) [SR] /);
  }

  test('a task of a pid namespace that is not its init is refused as a tree root, and runs on', async () => {
    const w = startInNamespaces(['pid']);
    try {
      const child = childOf(w.pid)!;
      await refused(child, /pid namespace pid:\[\d+\] of pid \d+: it is pid 2 there, not the namespace's init/);
    } finally {
      killTree(w.unshare);
      waitPid(w.unshare);
    }
  });

  for (const [kind, link] of [['mount', 'mnt']] as const) {
    test(`a tree in a ${kind} namespace of its own is refused at dump time, naming it, and runs on`, async () => {
      const dir = tmpDir(`ns-${kind}`);
      const u = spawnTask(['unshare', '--fork', `--${kind}`, 'sleep', '1000'], { cwd: dir, stdin: { path: '/dev/null' } });
      try {
        const pid = waitFor('the sleeper', () => {
          const c = childOf(u);
          return c && fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').startsWith('sleep') ? c : undefined;
        });
        // A mount namespace is refused naming the mount that stops it (here its root, given no --root).
        const why = kind === 'mount' ? ' of pid \\d+: mount \\d+ at / \\(.*\\) is the tree\'s root mount, and no root \\(--root, RPC root\\) was given for it' : `.*stasis cannot dump ${link} namespaces`;
        await refused(pid, new RegExp(`${link} namespace ${link}:\\[\\d+\\]${why}`));
      } finally {
        killTree(u);
        waitPid(u);
      }
    });
  }

  test('a user namespace without a pid namespace holding a process with threads, one whose tasks share an fd table, one with a limit of its own, one denying setgroups to tasks with other groups than stasis\'s, one not owning the tree\'s pid namespace, and one whose maps are not written, are refused at dump time, naming them, and run on', async () => {
    const w = startInNamespaces(['user'], 'all', 'pidfds');
    try {
      await refused(w.pid, /user namespace user:\[\d+\] of pid \d+: pid \d+ has threads, and the tree has no pid namespace of its own/);
    } finally {
      killTree(w.unshare);
      waitPid(w.unshare);
    }
    // A limit of the namespace's own (a user.max_* sysctl set inside it).
    const l = startInNamespaces(['user']);
    try {
      execFileSync('nsenter', ['-t', String(l.pid), '-U', '--preserve-credentials', 'sh', '-c', 'echo 7 > /proc/sys/user/max_inotify_instances'], { env: SBIN_ENV });
      await refused(l.pid, /user namespace user:\[\d+\] of pid \d+: it has limits of its own \(user\.max_inotify_instances = 7\)/);
    } finally {
      killTree(l.unshare);
      waitPid(l.unshare);
    }
    // Supplementary groups other than stasis's, which a namespace denying setgroups cannot give back.
    const gdir = tmpDir('ns-groups');
    const g = spawnTask(['setpriv', '--groups', '5,6', 'unshare', '--user', '--map-root-user', '--fork', 'sleep', '1000'], { cwd: gdir, stdin: { path: '/dev/null' } });
    try {
      const pid = waitFor('the sleeper', () => {
        const c = childOf(g);
        return c && fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').startsWith('sleep') ? c : undefined;
      });
      await refused(pid, /user namespace user:\[\d+\] of pid \d+: thread \d+ of pid \d+ has supplementary groups 5,6, stasis none, and the namespace denies setgroups/);
    } finally {
      killTree(g);
      waitPid(g);
    }
    // Two processes sharing one fd table (CLONE_FILES).
    const f = startInNamespaces(['user', 'pid'], 'x', 'fdtshared');
    try {
      await refused(f.pid, /Cannot dump pid \d+: it shares its fd table with pid \d+ \(CLONE_FILES\), and stasis cannot restore a shared fd table in a user namespace/);
    } finally {
      killTree(f.unshare);
      waitPid(f.unshare);
    }
    // The same in a pid namespace alone (its restore failed with EBADF: the pidfd of stasis the tasks take files through was gone).
    const fp = startInNamespaces(['pid'], 'x', 'fdtshared');
    try {
      await refused(fp.pid, /Cannot dump pid \d+: it shares its fd table with pid \d+ \(CLONE_FILES\), and stasis cannot restore a shared fd table in a pid namespace/);
    } finally {
      killTree(fp.unshare);
      waitPid(fp.unshare);
    }
    // The workload makes its user namespace below the pid namespace unshare made.
    const v = startInNamespaces(['pid', 'usermap']);
    try {
      await refused(v.pid, /user namespace user:\[\d+\] of pid \d+: the tree's pid namespace is owned by another user namespace/);
    } finally {
      killTree(v.unshare);
      waitPid(v.unshare);
    }
    const u = spawnTask(['unshare', '--fork', '--user', 'sleep', '1000'], { stdin: { path: '/dev/null' } });
    try {
      const pid = waitFor('the sleeper', () => {
        const c = childOf(u);
        return c && fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').startsWith('sleep') ? c : undefined;
      });
      await refused(pid, /user namespace user:\[\d+\] of pid \d+: its uid map is not written yet/);
    } finally {
      killTree(u);
      waitPid(u);
    }
  });

  test('a tree whose child is in another UTS namespace than the root is refused, naming both', async () => {
    const dir = tmpDir('ns-split');
    const sh = spawnTask(['sh', '-c', 'unshare --uts sleep 1000 & wait'], { cwd: dir, stdin: { path: '/dev/null' } });
    try {
      waitFor('the sleeper', () => {
        const c = childOf(sh);
        return c && fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').startsWith('sleep') ? c : undefined;
      });
      await refused(sh, /Cannot dump pid \d+: it is in uts namespace uts:\[\d+\], its tree's root \d+ in uts:\[\d+\]/);
    } finally {
      killTree(sh);
      waitPid(sh);
    }
  });
}
