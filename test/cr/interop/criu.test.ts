// CRIU's images both ways, with CRIU 4.2's own binary (../shared/criu/criu, or $STASIS_CRIU):
// CRIU restores what stasis dumped, and stasis restores what CRIU dumped, for each workload
// of the checkpoint tests whose state both tools keep. The restored workload checks itself
// (memory, registers, fds, offsets, bytes in flight) exactly as after a stasis round trip.
// Without the binary every test is skipped with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Workload, compileWorkload, assertPassed, tmpDir, verifyImages, sleepMs, REPO } from '../harness.js';
import { dump, preDump, restore } from '../../../src/api/index.js';
import { readImage, encodeImage } from '../../../src/image/index.js';
import { setChildSubreaper } from '../../../src/sys/index.js';
import { cgroup2Mount, removeCgroups } from '../containers/cgroup2.js';
import { criu, criuWorks, reapDumped } from './criu-tool.js';

const skip = criuWorks();
if (skip) process.stderr.write(`note: the CRIU interop tests are skipped: ${skip}\n`);
// The tree CRIU restores with -d is its child until CRIU exits: then it is this process's,
// so that the workload's exit status is waited for as after a stasis restore.
if (!skip) setChildSubreaper();


interface Case {
  name: string;
  /** A C workload of test/workloads, or with `script` the interpreter's script there. */
  workload: string;
  /** An interpreter script in test/workloads, run by `interpreter` (a binary on PATH). */
  script?: { interpreter: string; file: string };
  cflags?: string[];
  args?: string[];
  /** Options CRIU needs for the workload's state, on dump and restore (`--file-locks`). */
  criuArgs?: string[];
  /** Options stasis's dump needs for it (`linkRemap`). */
  dumpOpts?: { linkRemap?: boolean };
  /** What the test does between go and finish (a client of a restored server). */
  after?: (w: Workload) => Promise<void>;
  /**
   * State of the workload that CRIU 4.2 itself loses, found by its own round trip
   * (STASIS_INTEROP_CONTROL=1): when it restores (`restore`) or when it dumps (`dump`). That
   * direction is skipped with the reason: it cannot pass with any images.
   */
  criuLoses?: { restore?: string; dump?: string };
  /** Before the workload starts, and between dump and restore (cgroups made, then removed). */
  setup?: () => void;
  beforeRestore?: () => void;
  /** Why the case cannot run on this machine. */
  unavailable?: string | false;
}

/** Connects, sends `text`, and gives back the server's answer. */
function ask(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => s.write(text));
    let got = '';
    s.setEncoding('utf8');
    s.setTimeout(15000, () => s.destroy(new Error(`no answer from port ${port} in 15 s`)));
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

const ZERO_DGRAM = "CRIU 4.2 stops dumping a socket's queue at a zero-length datagram: it and every datagram queued after it are lost";

// A tree across two cgroups of a directory of the test's own in the cgroup2 hierarchy: the
// cgroups are removed between dump and restore, which makes them again (--manage-cgroups soft).
const CG2 = cgroup2Mount();
const CG_TOP = typeof CG2 === 'string' ? '' : path.join(CG2.mount, `stasis-interop-${process.pid}`);
const CG_A = `/stasis-interop-${process.pid}/a`, CG_B = `/stasis-interop-${process.pid}/b/deep`;
const cgDir = (p: string) => path.join(CG_TOP, '..', p);
process.on('exit', () => {
  if (CG_TOP) removeCgroups(CG_TOP);
});

const CASES: Case[] = [
  { name: 'registers, stack, heap and a dirty private file mapping (counter)', workload: 'counter' },
  { name: 'threads', workload: 'threads', cflags: ['-pthread'] },
  { name: 'a process tree', workload: 'tree' },
  {
    name: 'a tree in two cgroup v2 cgroups (cgroup.img), made again with their properties',
    workload: 'cgtree', args: [cgDir(CG_A), cgDir(CG_B), CG_A, CG_B], criuArgs: ['--manage-cgroups'],
    unavailable: typeof CG2 === 'string' ? CG2 : false,
    setup: () => {
      removeCgroups(CG_TOP);
      fs.mkdirSync(cgDir(CG_A), { recursive: true });
      fs.mkdirSync(cgDir(CG_B), { recursive: true });
      fs.writeFileSync(path.join(cgDir(CG_B), 'cgroup.max.depth'), '4');
    },
    beforeRestore: () => removeCgroups(CG_TOP),
    after: async () => assert.equal(fs.readFileSync(path.join(cgDir(CG_B), 'cgroup.max.depth'), 'utf8').trim(), '4'),
  },
  {
    name: 'pipes with unread data in any fd layout',
    workload: 'pipes',
    criuLoses: {
      restore: "CRIU 4.2 opens pipes without O_LARGEFILE (F_GETFL shows 0, not 0100000)",
      dump: 'CRIU 4.2 does not dump the data of a pipe of which the task holds only the write end',
    },
  },
  { name: 'FIFOs with data', workload: 'fifos', criuLoses: { dump: 'CRIU 4.2 does not dump the data of a FIFO opened write-only' } },
  {
    name: 'Unix socket pairs with data in flight',
    workload: 'unixpairs',
    criuLoses: {
      restore: 'CRIU 4.2 restores a datagram socket whose peer closed as unconnected (send fails with ENOTCONN, not ECONNREFUSED)',
      dump: ZERO_DGRAM,
    },
  },
  {
    name: 'eventfd, signalfd, timerfd and epoll',
    workload: 'anonfds',
    criuLoses: { restore: 'CRIU 4.2 restores an eventfd without EFD_SEMAPHORE', dump: 'CRIU 4.2 does not dump the EFD_SEMAPHORE mode of an eventfd' },
  },
  { name: 'regular files at their offsets and flags', workload: 'files', criuLoses: { restore: 'CRIU 4.2 reopens a directory without O_DIRECTORY in its flags' } },
  { name: 'shared memory across a tree', workload: 'shmem', args: ['share'] },
  { name: 'SysV segments (CRIU: pages in pagemap-shmem images), semaphores and messages of an IPC namespace of its own', workload: 'sysv' },
  {
    name: 'a handler and a blocked pending signal',
    workload: 'signals',
    after: async (w) => {
      sleepMs(50);
      process.kill(w.pid, 'SIGUSR1');
    },
  },
  { name: 'POSIX timers', workload: 'posix-timers', cflags: ['-lrt'] },
  { name: 'memory layouts: guard pages, read-only data, shared file mappings, advice', workload: 'maps' },
  {
    name: 'groups and sessions whose leaders exited',
    workload: 'orphans',
    criuLoses: {
      restore:
        'CRIU 4.2 makes a task whose session leader exited (T) the child of a helper that exits at once, so T goes to the subreaper above the tree, not to the tree\'s root, a subreaper itself: its ppid after restore is the test\'s pid',
    },
  },
  { name: 'pipes across a tree', workload: 'pipetree' },
  { name: 'a producer-consumer pipeline', workload: 'pipeline' },
  { name: 'Unix sockets across a tree', workload: 'unixtree', criuLoses: { dump: `${ZERO_DGRAM} (fd 9's)` } },
  { name: 'Unix datagram sockets bound to a path, senders connected one way', workload: 'unixdgram', criuLoses: { dump: `${ZERO_DGRAM} (fd 5's)` } },
  {
    name: 'epoll targets added by fds closed since, an epoll watching an epoll',
    workload: 'epolls',
    criuLoses: {
      restore: 'CRIU 4.2 adds an epoll target by the fd its image names (another fd of the same file), not by the fd it was added with and closed since, so EPOLL_CTL_DEL by that fd (50) fails with ENOENT',
      dump: 'CRIU 4.2 records an epoll target whose fd was closed by another fd of the same file (tfd 3, not 50): the fd it was added with is lost',
    },
  },
  { name: 'inotify watches', workload: 'inotify' },
  { name: 'POSIX and OFD locks, flocks', workload: 'locks', criuArgs: ['--file-locks'] },
  {
    name: 'file leases, one being broken',
    workload: 'leases',
    criuArgs: ['--file-locks'],
    criuLoses: { restore: 'CRIU 4.2 restores a lease being broken by breaking it again, which sends the restored task a second SIGIO (2 break signals, 1 expected)' },
  },
  { name: 'deleted files open (ghosts)', workload: 'ghost' },
  { name: 'deleted and replaced files mapped shared and private (ghosts)', workload: 'unlink-mmap' },
  { name: 'a memfd mapped shared and private, its private copy shared copy-on-write with a child', workload: 'memfd-priv' },
  { name: 'memfds without pages (empty, and truncated but never written), of which CRIU writes no pagemap', workload: 'memfdempty' },
  { name: 'files shared across a tree', workload: 'files-share' },
  { name: 'files of /proc', workload: 'procfiles' },
  { name: 'general purpose, SSE and AVX registers', workload: 'regs' },
  {
    name: 'a removed cwd and directory, an unlinked FIFO with data and an unlinked symlink',
    workload: 'deleted',
    criuLoses: { restore: 'CRIU 4.2 leaves the directory a/ it makes again for the removed cwd a/in behind in the workload\'s directory' },
  },
  {
    name: 'an unlinked file that keeps another link (link remap)',
    workload: 'linked',
    dumpOpts: { linkRemap: true },
    criuArgs: ['--link-remap'],
  },
  { name: 'two processes sharing one fd table', workload: 'fdtshared' },
  {
    name: 'a pty pair as the controlling terminal, with settings and queued bytes',
    workload: 'ptys',
    criuLoses: {
      restore: 'CRIU 4.2 cannot restore a pty pair as a controlling terminal here: with its own images its open of the slave /dev/pts/0 fails with EIO',
      dump: 'CRIU 4.2 dumps only the complete lines of a canonical pty\'s input: the unfinished line ("partial") is lost',
    },
  },
  { name: 'a Unix listener on a path and a connection it accepted', workload: 'unixserver' },
  {
    name: 'Unix connections a listener has not accepted yet, a socket bound and never connected',
    workload: 'unixpending',
    criuLoses: {
      restore: "CRIU 4.2 does not give the connections not accepted yet back in the listener's queue order (its own round trip of this workload fails the same way)",
      dump: "CRIU 4.2's images do not keep the order of the connections a listener has not accepted yet (three here): stasis refuses to restore them",
    },
  },
  {
    name: 'Unix sockets whose files were removed or replaced',
    workload: 'unixremoved',
    criuLoses: { restore: 'CRIU 4.2 restores the accepted end of a listener whose file was removed unbound (getsockname() is empty; its own round trip too)' },
  },
  { name: 'bound Unix datagram sockets connected to a peer or to themselves', workload: 'unixdgbound' },
  {
    name: 'UDP shut sides, SOL_SOCKET options, peer credentials of a pair',
    workload: 'sockopts',
    criuLoses: {
      restore: 'CRIU 4.2 makes a socket pair in the restoring task: SO_PEERCRED names it, uid 0, not the child that made the pair (uid 4321, gid 1234)',
      dump: 'CRIU 4.2 does not dump the SO_PEERCRED of a Unix socket pair (UnixSkEntry has no field for it)',
    },
  },
  { name: 'fanotify inode marks', workload: 'fanotify' },
  // (Reaped processes killed by SIGKILL, no PIDFD_THREAD: all CRIU 4.2 keeps of them.)
  { name: 'pidfds of a child, of itself, of a zombie and of reaped processes', workload: 'pidfds', args: ['sigkill'], cflags: ['-pthread'] },
  { name: 'membarrier registrations, MAP_DROPPABLE and MADV_WIPEONFORK areas', workload: 'mmflags' },
  { name: 'python3 with three threads', workload: 'pythreads', script: { interpreter: 'python3', file: 'pythreads.py' } },
  {
    name: 'TCP listeners on IPv4 and IPv6',
    workload: 'tcpserver',
    criuLoses: { restore: 'CRIU 4.2 does not restore TCP_DEFER_ACCEPT', dump: 'CRIU 4.2 does not dump TCP_DEFER_ACCEPT' },
    after: async (w) => {
      const [p4, p6] = fs.readFileSync(w.file('ports'), 'utf8').trim().split(' ').map(Number) as [number, number];
      const secret = fs.readFileSync(w.file('secret-copy'), 'utf8');
      const [a4, a6] = await Promise.all([ask('127.0.0.1', p4, 'hello4'), ask('::1', p6, 'hello6')]);
      assert.deepEqual([a4, a6], [`${secret}:hello4`, `${secret}:hello6`]);
    },
  },
];

/** The interpreter's own binary (pyenv's python3 is a shell shim that execs it), or null. */
function interpreterBinary(name: string): string | null {
  try {
    return execFileSync(name, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', stdio: 'pipe' }).trim() || null;
  } catch {
    return null;
  }
}

/** `tag` is the direction: a workload CRIU dumps (any tag but 'to-criu') leads its own session. */
function startCase(c: Case, tag: string): Workload {
  const name = `${c.workload}-${tag}`;
  c.setup?.();
  const opts = { setsid: tag !== 'to-criu' };
  const w = c.script
    ? new Workload(name, interpreterBinary(c.script.interpreter)!, c.args ?? [], [path.join(REPO, 'test/workloads', c.script.file)]).start(opts)
    : new Workload(name, compileWorkload(c.workload, c.cflags ?? []), c.args ?? []).start(opts);
  // tcpserver's secret is read back from the restored server: keep a copy for the check.
  if (fs.existsSync(w.file('secret'))) fs.copyFileSync(w.file('secret'), w.file('secret-copy'));
  return w;
}


/** Waits for the restored root: a child again (stasis restore, or CRIU's -d through the subreaper). */
async function finishRestored(c: Case, w: Workload): Promise<void> {
  w.go();
  if (c.after) await c.after(w);
  assertPassed(w.finish());
}

const noInterpreter = (c: Case): string | false =>
  c.script && !interpreterBinary(c.script.interpreter) ? `${c.script.interpreter} is not installed` : false;

for (const c of CASES) {
  test(`CRIU 4.2 restores stasis's images: ${c.name}`, { skip: skip || noInterpreter(c) || c.unavailable || c.criuLoses?.restore || false }, async () => {
    const w = startCase(c, 'to-criu');
    const images = tmpDir(`${c.workload}-to-criu`);
    await dump({ pid: w.pid, imagesDir: images, shellJob: true, ...c.dumpOpts });
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the dumped task is still there');
    verifyImages(images);
    c.beforeRestore?.();
    criu(['restore', '-d', '-j', ...(c.criuArgs ?? [])], images, 'restore.log');
    assert.ok(fs.existsSync(`/proc/${w.pid}`), `CRIU did not bring back pid ${w.pid}`);
    await finishRestored(c, w);
  });

  test(`stasis restores CRIU 4.2's images: ${c.name}`, { skip: skip || noInterpreter(c) || c.unavailable || c.criuLoses?.dump || false }, async () => {
    const w = startCase(c, 'from-criu');
    const images = tmpDir(`${c.workload}-from-criu`);
    criu(['dump', '-t', String(w.pid), '-j', ...(c.criuArgs ?? [])], images, 'dump.log');
    reapDumped(images);
    c.beforeRestore?.();
    const r = await restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true });
    assert.equal(r.pid, w.pid);
    await finishRestored(c, w);
  });
}

// STASIS_INTEROP_CONTROL=1: CRIU's own round trip of each workload, to tell a stasis bug from
// state CRIU itself does not keep.
for (const c of process.env.STASIS_INTEROP_CONTROL ? CASES : []) {
  test(`control: CRIU 4.2 restores its own images: ${c.name}`, { skip: skip || noInterpreter(c) }, async () => {
    const w = startCase(c, 'control');
    const images = tmpDir(`${c.workload}-control`);
    criu(['dump', '-t', String(w.pid), '-j', ...(c.criuArgs ?? [])], images, 'dump.log');
    reapDumped(images);
    criu(['restore', '-d', '-j', ...(c.criuArgs ?? [])], images, 'restore.log');
    await finishRestored(c, w);
  });
}

test('CRIU 4.2 restores a stasis incremental chain: two pre-dumps, then a dump on top of them', { skip }, async () => {
  const c = CASES[0]!;
  const w = startCase(c, 'chain');
  const root = tmpDir('counter-chain');
  const dirs = ['1', '2', '3'].map((d) => path.join(root, d));
  for (const d of dirs) fs.mkdirSync(d);
  await preDump({ pid: w.pid, imagesDir: dirs[0]! });
  await preDump({ pid: w.pid, imagesDir: dirs[1]!, prevImagesDir: '../1' });
  const d = await dump({ pid: w.pid, imagesDir: dirs[2]!, prevImagesDir: '../2', shellJob: true });
  assert.ok(d.pagesSkippedParent > 0, 'the dump left unchanged pages to its parents');
  assert.equal(fs.readlinkSync(path.join(dirs[2]!, 'parent')), '../2');
  criu(['restore', '-d', '-j'], dirs[2]!, 'restore.log');
  await finishRestored(c, w);
});

test('a tree CRIU 4.2 dumped and stasis restored is dumped by stasis and restored by CRIU again', { skip }, async () => {
  const c = CASES[0]!;
  const w = startCase(c, 'both');
  const a = tmpDir('counter-both-a'), b = tmpDir('counter-both-b');
  criu(['dump', '-t', String(w.pid), '-j'], a, 'dump.log');
  reapDumped(a);
  await restore({ imagesDir: a, detach: true, shellJob: true, noVerify: true });
  await dump({ pid: w.pid, imagesDir: b, shellJob: true });
  verifyImages(b);
  criu(['restore', '-d', '-j'], b, 'restore.log');
  await finishRestored(c, w);
});

test("a CRIU image with a field this stasis does not know is refused naming the image, message and field, and nothing is left", { skip }, async () => {
  const w = startCase(CASES[0]!, 'unknown');
  const images = tmpDir('counter-unknown');
  criu(['dump', '-t', String(w.pid), '-j'], images, 'dump.log');
  reapDumped(images);
  // A field of a newer CRIU in the task's core: 4242, a varint.
  const core = readImage(images, 'core', w.pid);
  core[0]!.tc!.$unknown = [{ no: 4242, wireType: 0, data: new Uint8Array([0x2a]) }];
  fs.writeFileSync(path.join(images, `core-${w.pid}.img`), encodeImage('core', core));
  await assert.rejects(restore({ imagesDir: images, detach: true, shellJob: true, noVerify: true }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_UNSUPPORTED');
    assert.match(err.message, new RegExp(`core-${w.pid}\\.img .*field 4242 of TaskCoreEntry`));
    return true;
  });
  assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'a refused restore left a process');
});
