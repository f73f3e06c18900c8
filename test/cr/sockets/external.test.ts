// A datagram socket connected to a bound socket outside the tree (test/workloads/unixext.c,
// the socket outside held by this test): refused without --ext-unix-sk; with it the images
// hold the outside socket as CRIU's USK_EXTERN entry, a restore without the option refuses
// them and leaves no process, and a restore with it connects the socket to the same name
// again: what it sends reaches the socket outside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, tmpDir, verifyImages, assertPassed, assertDumpRefused, waitFor } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { readImage } from '../../../src/image/index.js';
import { AF_UNIX, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, bindUnix, closeFd, recvmsgInto, socket } from '../../../src/sys/index.js';

/** The next datagram on `fd`, waited for up to 10 s. */
function received(fd: number): string {
  const buf = Buffer.alloc(16);
  const r = waitFor('a datagram from the tree', () => {
    const got = recvmsgInto(fd, buf, 0, buf.length, MSG_DONTWAIT);
    return got.n > 0 ? got : undefined;
  }, 10000);
  return buf.subarray(0, r.n).toString();
}

test('a datagram socket connected outside the tree comes back connected to the same name with --ext-unix-sk', async () => {
  const dir = tmpDir('unixext-outside');
  const path = `${dir}/ext.sock`;
  const outside = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
  try {
    bindUnix(outside, Buffer.from(path));
    const w = new Workload('unixext', compileWorkload('unixext'), [path]).start();
    assert.equal(received(outside), '1');
    await assertDumpRefused(w, 'E_UNSUPPORTED', [/which no task of the dumped tree holds \(a peer outside the tree\)$/]);
    const images = tmpDir('unixext-img');
    await dump({ pid: w.pid, imagesDir: images, extUnixSk: true });
    verifyImages(images);
    const ext = readImage(images, 'files', undefined).find((f) => f.usk && f.usk.uflags === 1)?.usk;
    assert.equal(Buffer.from(ext!.name).toString(), path, 'the outside socket is an entry of its own, with its name');
    await assert.rejects(restore({ imagesDir: images, detach: true }), (e: unknown) => e instanceof StasisError && e.code === 'E_UNSUPPORTED' && /needs --ext-unix-sk$/.test(e.message));
    assert.equal(fs.existsSync(`/proc/${w.pid}`), false, 'the refused restore left a process');
    const r = await restore({ imagesDir: images, detach: true, extUnixSk: true });
    assert.equal(r.pid, w.pid);
    w.go();
    assertPassed(w.finish());
    assert.equal(received(outside), '2');
  } finally {
    closeFd(outside);
  }
});
