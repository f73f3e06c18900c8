// CRIU's RPC through `stasis swrk`, spoken by a client of the test's own (as runc speaks it).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { CriuReqType } from '../../../src/image/gen/stasis/rpc_pb.js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { CriuReqSchema, CriuRespSchema } from '../../../src/image/gen/stasis/rpc_pb.js';
import {
  syscall, waitPid, kill, spawnTask, socket, connectUnix, sendMessage, recvMessage, closeFd, AF_UNIX, SOCK_SEQPACKET,
} from '../../../src/sys/index.js';
import { Workload, compileWorkload, assertPassed, tmpDir, verifyImages, waitFor, REPO } from '../harness.js';
import { SwrkClient } from './client.js';
import { CRIU_VERSION_BYTES } from '../../../src/rpc/version-wire.js';
import { newPipe, assertCounts, finalCount } from '../pipes/pipe-reader.js';
import { lazyPagesUnavailable } from '../../../src/mem/lazy-pages.js';

const lazyWhy = lazyPagesUnavailable();
const lazySkip = lazyWhy ? `this kernel cannot restore lazily: ${lazyWhy}` : false;

const PR_SET_CHILD_SUBREAPER = 36;

// A tree restored by swrk is its child; once swrk exits, it is ours (as a restored container is runc's).
before(() => {
  syscall('prctl', PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
});

function untraced(pid: number): boolean {
  return /TracerPid:\s+0\n/.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
}

test('VERSION answers as CRIU 4.2 does (runc checks the number), CHECK succeeds, FEATURE_CHECK offers memory tracking', () => {
  const c = new SwrkClient();
  const v = c.call({ type: CriuReqType.VERSION, keepOpen: true });
  assert.equal(v.type, CriuReqType.VERSION);
  assert.ok(v.success);
  assert.equal(v.version?.majorNumber, 4);
  assert.equal(v.version?.minorNumber, 2);
  const ch = c.call({ type: CriuReqType.CHECK, keepOpen: true });
  assert.ok(ch.success, ch.crErrmsg);
  const f = c.call({ type: CriuReqType.FEATURE_CHECK, features: { memTrack: true, lazyPages: true }, keepOpen: true });
  assert.ok(f.success);
  assert.equal(f.features?.memTrack, true);
  assert.equal(f.features?.lazyPages, false);
  const none = c.call({ type: CriuReqType.PAGE_SERVER });
  assert.equal(none.success, false);
  assert.match(none.crErrmsg, /PAGE_SERVER/);
  assert.deepEqual(c.close(), { kind: 'exited', pid: c.pid, code: 0 });
});

const perl = spawnSync('sh', ['-c', 'command -v perl'], { encoding: 'utf8' }).stdout.trim();

test('run as runc runs it, the launcher answers a VERSION alone itself with the bytes swrk answers, and leaves any other first request, and what follows, to swrk', { skip: !perl && 'no perl here: node answers VERSION' }, () => {
  // The launcher's answer is swrk's, byte for byte.
  const hex = /pack\("H\*", "([0-9a-f]+)"\)/.exec(fs.readFileSync(path.join(REPO, 'bin/stasis.js'), 'utf8'))?.[1];
  assert.equal(hex, CRIU_VERSION_BYTES.toString('hex'));
  const dir = tmpDir('swrk-launcher');
  const run = (name: string, talk: (c: SwrkClient) => void): string => {
    const err = path.join(dir, `${name}.err`);
    const c = new SwrkClient({ ...process.env, STASIS_TRACE: '1' }, { stderr: { path: err, flags: fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, mode: 0o600 } }, true);
    talk(c);
    assert.deepEqual(c.close(), { kind: 'exited', pid: c.pid, code: 0 }, name);
    return fs.readFileSync(err, 'utf8');
  };
  try {
    // VERSION alone, as runc asks it: answered before node starts, and the session ends.
    let said = run('version', (c) => {
      c.send(toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.VERSION })));
      const m = recvMessage(c.fd);
      assert.equal(Buffer.from(m!.data).toString('hex'), CRIU_VERSION_BYTES.toString('hex'));
      assert.equal(recvMessage(c.fd), null, 'the session ends with the answer');
    });
    assert.match(said, /VERSION answered by the launcher/);
    assert.doesNotMatch(said, /node started/);
    // CHECK first, with an fd along: swrk gets it whole.
    said = run('check', (c) => {
      const fd = fs.openSync('/dev/null', 'r');
      c.send(toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.CHECK })), [fd]);
      fs.closeSync(fd);
      const r = fromBinary(CriuRespSchema, recvMessage(c.fd)!.data);
      assert.equal(r.type, CriuReqType.CHECK);
      assert.ok(r.success, r.crErrmsg);
    });
    assert.match(said, /node started/);
    assert.doesNotMatch(said, /answered by the launcher/);
    // VERSION with keep_open is not VERSION alone: swrk answers it, then what comes next.
    said = run('keep-open', (c) => {
      assert.equal(c.call({ type: CriuReqType.VERSION, keepOpen: true }).version?.majorNumber, 4);
      assert.ok(c.call({ type: CriuReqType.CHECK }).success);
    });
    assert.match(said, /node started/);
    // A client that goes away at once.
    run('eof', () => {});
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('DUMP and RESTORE over RPC bring a workload back as it was, every notify acked in CRIU\'s order', () => {
  const w = new Workload('rpc-files', compileWorkload('files')).start();
  const images = tmpDir('rpc-img'), work = tmpDir('rpc-work');
  const imgFd = fs.openSync(images, 'r'), workFd = fs.openSync(work, 'r');
  try {
    const d = new SwrkClient();
    const dr = d.call({
      type: CriuReqType.DUMP,
      opts: { imagesDirFd: imgFd, workDirFd: workFd, pid: w.pid, logLevel: 4, logFile: 'dump.log', notifyScripts: true, fileLocks: false },
    });
    assert.ok(dr.success, dr.crErrmsg);
    assert.deepEqual(d.notified, ['pre-dump', 'network-lock', 'post-dump']);
    d.close();
    assert.match(fs.readFileSync(path.join(work, 'dump.log'), 'utf8'), /dump done/);
    verifyImages(images);
    waitPid(w.pid); // the dumped workload was our child: its zombie is ours to reap

    const r = new SwrkClient();
    const rr = r.call({ type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd, workDirFd: workFd, logLevel: 4, logFile: 'restore.log', notifyScripts: true } });
    assert.ok(rr.success, rr.crErrmsg);
    assert.equal(rr.restore?.pid, w.pid);
    assert.deepEqual(r.notified, [
      'pre-restore', `setup-namespaces (${w.pid})`, 'post-setup-namespaces', `post-restore (${w.pid})`, 'network-unlock', 'pre-resume', 'post-resume',
    ]);
    r.close();
    assert.ok(fs.existsSync(path.join(work, 'restore.log')));
    w.go();
    assertPassed(w.finish());
  } finally {
    fs.closeSync(imgFd);
    fs.closeSync(workFd);
    w.kill();
  }
});

test('RESTORE with rst_sibling (as runc asks): the root is the client\'s child while swrk still serves, and the client reaps it', () => {
  const w = new Workload('rpc-sibling', compileWorkload('files')).start();
  const images = tmpDir('rpc-sibling-img');
  const imgFd = fs.openSync(images, 'r');
  try {
    const d = new SwrkClient();
    const dr = d.call({ type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: w.pid, logFile: 'dump.log', logLevel: 4 } });
    assert.ok(dr.success, dr.crErrmsg);
    d.close();
    waitPid(w.pid); // the dumped workload was our child
    const r = new SwrkClient();
    const rr = r.call({ type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd, logFile: 'restore.log', logLevel: 4, rstSibling: true }, keepOpen: true });
    assert.ok(rr.success, rr.crErrmsg);
    assert.equal(rr.restore?.pid, w.pid);
    // swrk is still there: a root of its own would be its child.
    assert.equal(fs.existsSync(`/proc/${r.pid}`), true);
    assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), new RegExp(`PPid:\\s+${process.pid}\\n`), 'the restored root is not the client\'s child');
    assert.ok(untraced(w.pid), 'swrk still traces the restored root');
    assert.deepEqual(r.close(), { kind: 'exited', pid: r.pid, code: 0 });
    w.go();
    assertPassed(w.finish());
  } finally {
    fs.closeSync(imgFd);
    w.kill();
  }
});

test('an option stasis does not support is refused by name in the response; a refused notify step aborts the dump; the tree runs on', () => {
  const w = new Workload('rpc-refused', compileWorkload('files')).start();
  const images = tmpDir('rpc-img');
  const imgFd = fs.openSync(images, 'r');
  try {
    const c = new SwrkClient();
    const r = c.call({ type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: w.pid, lazyPages: true } });
    assert.equal(r.success, false);
    assert.match(r.crErrmsg, /lazy_pages \(--lazy-pages\) is not supported/);
    c.close();

    const n = new SwrkClient();
    const nr = n.call({ type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: w.pid, notifyScripts: true } }, (s) => s !== 'network-lock');
    assert.equal(nr.success, false);
    assert.match(nr.crErrmsg, /failed its network-lock step/);
    assert.deepEqual(n.notified, ['pre-dump', 'network-lock', 'network-unlock']);
    n.close();
    assert.deepEqual(fs.readdirSync(images), []);
    assert.ok(untraced(w.pid));
    w.go();
    assertPassed(w.finish());
  } finally {
    fs.closeSync(imgFd);
    w.kill();
  }
});

test('runc\'s way with a container\'s stdout pipe: DUMP takes the root\'s stdio pipe as external, RESTORE without inherit_fd is refused, with inherit_fd fd 1 (and 2, the same key) of swrk, whose stdout is the new pipe, every line comes once', async () => {
  const old = newPipe();
  const w = new Workload('rpc-inherit', compileWorkload('stdout-counter')).start({ stdout: { fd: old.write } });
  closeFd(old.write);
  const key = fs.readlinkSync(`/proc/${w.pid}/fd/1`);
  const images = tmpDir('rpc-inherit-img');
  const imgFd = fs.openSync(images, 'r');
  try {
    // As runc asks: no `external` for the pipe (runc keeps its init's stdio in descriptors.json).
    const d = new SwrkClient();
    const dr = d.call({ type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: w.pid, logLevel: 4, logFile: 'dump.log' } });
    d.close();
    assert.ok(dr.success, dr.crErrmsg);
    waitPid(w.pid);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(images, 'stasis-external.json'), 'utf8')), { pipes: [key] });
    const before = await old.reader.untilEof();

    const c = new SwrkClient();
    const refused = c.call({ type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd } });
    c.close();
    assert.equal(refused.success, false);
    assert.match(refused.crErrmsg, /Cannot restore pipe:\[\d+\]: its other end was outside the tree.*--inherit-fd fd\[N\]:pipe:/);
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false);

    const next = newPipe();
    const r = new SwrkClient(process.env, { stdout: { fd: next.write } });
    closeFd(next.write);
    const rr = r.call({
      type: CriuReqType.RESTORE,
      opts: { imagesDirFd: imgFd, logLevel: 4, logFile: 'restore.log', inheritFd: [{ key, fd: 1 }, { key, fd: 2 }] },
    });
    assert.ok(rr.success, rr.crErrmsg);
    r.close();
    assert.match(fs.readFileSync(path.join(images, 'restore.log'), 'utf8'), /pipe:\[\d+\] from fd 1 \(--inherit-fd\)/);
    assert.equal(fs.readlinkSync(`/proc/${w.pid}/fd/1`), `pipe:[${fs.fstatSync(next.reader.fd).ino}]`);
    w.go();
    const res = w.finish();
    assertPassed(res);
    assertCounts(before + await next.reader.untilEof(), finalCount(res.result));
  } finally {
    fs.closeSync(imgFd);
    w.kill();
  }
});

/** `stasis service` on a socket in `dir`, listening once this returns: its pid and the socket's path. */
function startService(dir: string): { pid: number; address: string } {
  const address = path.join(dir, 'criu.sock');
  const pid = spawnTask([process.execPath, path.join(REPO, 'bin/stasis.js'), 'service', '--address', address], {
    stdin: { path: '/dev/null' }, stdout: { path: path.join(dir, 'out') }, stderr: { path: path.join(dir, 'err') },
  });
  try {
    waitFor('the service socket', () => fs.statSync(address, { throwIfNoEntry: false })?.isSocket());
  } catch (e) {
    stopService(pid);
    throw e;
  }
  return { pid, address };
}

function stopService(pid: number): void {
  kill(pid, 15);
  waitPid(pid);
}

test('stasis service answers on its socket, one connection after another', () => {
  const dir = tmpDir('rpc-service');
  const { pid, address } = startService(dir);
  try {
    for (let i = 0; i < 2; i++) {
      const fd = socket(AF_UNIX, SOCK_SEQPACKET);
      connectUnix(fd, Buffer.from(address));
      sendMessage(fd, toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.VERSION })));
      const r = fromBinary(CriuRespSchema, recvMessage(fd)!.data);
      assert.ok(r.success);
      assert.equal(r.version?.majorNumber, 4);
      assert.equal(recvMessage(fd), null, 'the connection stays open without keep_open');
      closeFd(fd);
    }
  } finally {
    stopService(pid);
  }
});

/** One request on a new connection to the service at `address`, as libcriu sends it. */
function serviceCall(address: string, req: Parameters<typeof create<typeof CriuReqSchema>>[1]) {
  const fd = socket(AF_UNIX, SOCK_SEQPACKET);
  try {
    connectUnix(fd, Buffer.from(address));
    sendMessage(fd, toBinary(CriuReqSchema, create(CriuReqSchema, req)));
    return fromBinary(CriuRespSchema, recvMessage(fd)!.data);
  } finally {
    closeFd(fd);
  }
}

test('stasis service dumps and restores one request after another, and reaps the root it restored once it exits: no zombie is left', () => {
  const dir = tmpDir('rpc-service-cr');
  const { pid, address } = startService(dir);
  const w = new Workload('rpc-service-cr', compileWorkload('files')).start();
  const images = tmpDir('rpc-service-img');
  const imgFd = fs.openSync(images, 'r');
  try {
    const d = serviceCall(address, { type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: w.pid, logFile: 'dump.log', logLevel: 4 } });
    assert.ok(d.success, d.crErrmsg);
    waitPid(w.pid); // the dumped workload was our child
    // As CRIU's: the service's parent is no client of it.
    const sib = serviceCall(address, { type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd, logFile: 'restore-sibling.log', logLevel: 4, rstSibling: true } });
    assert.equal(sib.success, false);
    assert.match(sib.crErrmsg, /rst_sibling is not allowed in a standalone service/);
    const r = serviceCall(address, { type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd, logFile: 'restore.log', logLevel: 4 } });
    assert.ok(r.success, r.crErrmsg);
    assert.equal(r.restore?.pid, w.pid);
    assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), new RegExp(`PPid:\\s+${pid}\\n`), 'the restored root is the service\'s child');
    w.go();
    waitFor('the restored workload\'s result', () => fs.existsSync(w.file('result')));
    // A zombie keeps its /proc entry: it goes only once the service has reaped it.
    waitFor('the restored root reaped by the service', () => !fs.existsSync(`/proc/${w.pid}`));
    assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
    assert.equal(serviceCall(address, { type: CriuReqType.VERSION }).success, true, 'the service goes on serving');
  } finally {
    fs.closeSync(imgFd);
    stopService(pid);
    try {
      kill(w.pid, 9);
    } catch {
      /* gone */
    }
  }
});

/** Voluntary and involuntary context switches of every thread of `pid` so far. */
function switches(pid: number): number {
  let n = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    for (const m of st.matchAll(/ctxt_switches:\s+(\d+)/g)) n += Number(m[1]);
  }
  return n;
}

test('stasis service restores lazily (RESTORE with lazy_pages) one request after another, each with a filler thread started ahead and asleep until then; each restored process checks every byte of its memory', { skip: lazySkip }, () => {
  const dir = tmpDir('rpc-service-lazy');
  const { pid, address } = startService(dir);
  const w = new Workload('rpc-service-lazy', compileWorkload('lazymem', ['-lpthread']), ['64']).start();
  const images = tmpDir('rpc-service-lazy-img');
  const imgFd = fs.openSync(images, 'r');
  try {
    const d = serviceCall(address, { type: CriuReqType.DUMP, opts: { imagesDirFd: imgFd, pid: w.pid, logFile: 'dump.log', logLevel: 4 } });
    assert.ok(d.success, d.crErrmsg);
    waitPid(w.pid);
    w.go(); // it checks itself the moment it runs
    for (let i = 0; i < 2; i++) {
      fs.rmSync(w.file('result'), { force: true });
      // The spare filler waits on a futex: the service is as still as before it had one.
      const before = switches(pid);
      spawnSync('sleep', ['0.5']);
      const idle = switches(pid) - before;
      assert.ok(idle < 100, `the idle service switched ${idle} times in 0.5 s`);
      const r = serviceCall(address, { type: CriuReqType.RESTORE, opts: { imagesDirFd: imgFd, logFile: `restore-${i}.log`, logLevel: 4, lazyPages: true } });
      assert.ok(r.success, r.crErrmsg);
      assert.equal(r.restore?.pid, w.pid);
      assert.match(fs.readFileSync(path.join(images, `restore-${i}.log`), 'utf8'), /lazy page filler thread loaded already \(started ahead\)/);
      waitFor('the restored workload\'s result', () => fs.existsSync(w.file('result')), 60000);
      assert.match(fs.readFileSync(w.file('result'), 'utf8'), /^PASS/);
      waitFor('the restored root reaped by the service', () => !fs.existsSync(`/proc/${w.pid}`));
    }
  } finally {
    fs.closeSync(imgFd);
    stopService(pid);
    try {
      kill(w.pid, 9);
    } catch {
      /* gone */
    }
  }
});
