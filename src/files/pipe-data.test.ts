import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { PipeDataEntrySchema } from '../image/gen/stasis/pipe-data_pb.js';
import { writeImage } from '../image/index.js';
import { closeFd, fcntl, pipe2, pipeQueued, readRaw, writeRaw } from '../sys/index.js';
import { checkPipePeers, fillPipe, newPipeDataSink, readPipeData, takePipeEnd } from './pipe-data.js';

const O_CLOEXEC = 0o2000000, O_NONBLOCK = 0o4000, O_WRONLY = 1, F_GETFL = 3;

function withPipe(fn: (r: number, w: number) => void): void {
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  try {
    fn(r, w);
  } finally {
    closeFd(r);
    closeFd(w);
  }
}

test('takePipeEnd() copies a pipe\'s contents through either end and leaves them in place', () => {
  withPipe((r, w) => {
    const data = Buffer.from(Array.from({ length: 10000 }, (_, i) => (i * 7) & 0xff));
    assert.equal(writeRaw(w, data, 0, data.length), data.length);
    for (const [fd, flags] of [[r, 0], [w, O_WRONLY]] as const) {
      const sink = newPipeDataSink();
      takePipeEnd({ pid: process.pid, fd, flags, what: 'a test pipe' }, 7, '1:7', sink, 'pipes');
      const item = sink.pipes.get(7)!;
      assert.equal(item.entry.bytes, data.length);
      assert.equal(item.entry.size, 65536);
      assert.deepEqual(Buffer.from(item.payload), data);
      assert.equal(pipeQueued(r), data.length, 'the dump consumed data');
    }
  });
});

test('takePipeEnd() refuses two inodes that share the low 32 bits of their numbers', () => {
  withPipe((r) => {
    const sink = newPipeDataSink();
    takePipeEnd({ pid: process.pid, fd: r, flags: 0, what: 'a' }, 9, '1:9', sink, 'fifos');
    assert.throws(() => takePipeEnd({ pid: process.pid, fd: r, flags: 0, what: 'FIFO /b' }, 9, '2:9', sink, 'fifos'),
      { code: 'E_UNSUPPORTED', message: /FIFO \/b \(inode 2:9\) has the same 32-bit pipe id as inode 1:9/ });
  });
});

test('fillPipe() fails, rather than hangs, on more data than the pipe holds, and keeps the fd\'s flags', () => {
  withPipe((_r, w) => {
    const before = fcntl(w, F_GETFL);
    assert.throws(() => fillPipe(w, { size: undefined, data: Buffer.alloc(65537) }, 'pipe 5'),
      { code: 'E_RESTORE_FAILED', message: /contents of pipe 5: it took 65536 of 65537 bytes/ });
    assert.equal(fcntl(w, F_GETFL), before);
  });
});

test('fillPipe() sets the capacity before the contents, so 1 MiB fits', () => {
  withPipe((r, w) => {
    const data = Buffer.alloc(1 << 20, 0x5a);
    fillPipe(w, { size: 1 << 20, data }, 'pipe 6');
    assert.equal(pipeQueued(r), 1 << 20);
    const back = Buffer.alloc(1 << 20);
    for (let got = 0; got < back.length;) got += readRaw(r, back, got, back.length - got);
    assert.deepEqual(back, data);
  });
});

test('readPipeData() refuses a pipe given twice and data beyond the capacity', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-pipedata-'));
  const item = (pipeId: number, bytes: number, size: number) =>
    ({ entry: create(PipeDataEntrySchema, { pipeId, bytes, size }), payload: new Uint8Array(bytes) });
  writeImage(dir, 'pipes-data', undefined, [item(1, 3, 4096), item(1, 2, 4096)]);
  assert.throws(() => readPipeData(dir), { code: 'E_CORRUPT', message: /pipe 1 twice/ });
  writeImage(dir, 'pipes-data', undefined, [item(2, 5000, 4096)]);
  assert.throws(() => readPipeData(dir), { code: 'E_CORRUPT', message: /5000 bytes for pipe 2, whose capacity is 4096/ });
  fs.rmSync(dir, { recursive: true });
});

test('checkPipePeers() refuses an end whose other end is held elsewhere, unless it is external, and takes one whose other end is closed', () => {
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  const end = (fd: number, flags: number, id: number) => {
    const sink = newPipeDataSink();
    takePipeEnd({ pid: process.pid, fd, flags, what: `pipe:[${id}]` }, id, `1:${id}`, sink, 'pipes');
    return sink;
  };
  try {
    // Only the write end "in the tree", the read end held here: read by a process outside.
    assert.throws(() => checkPipePeers(end(w, O_WRONLY, 5)), { code: 'E_UNSUPPORTED', message: /^Cannot dump fd \d+ of pid \d+: pipe:\[5\] is read by a process outside the tree/ });
    assert.throws(() => checkPipePeers(end(r, 0, 6)), { message: /pipe:\[6\] is written by a process outside the tree/ });
    const ext = end(w, O_WRONLY, 5);
    ext.external = new Set(['pipe:[5]']);
    checkPipePeers(ext);
    assert.deepEqual(ext.externalSeen, ['pipe:[5]']);
    // Both ends in the tree: nothing outside is seen.
    const both = end(w, O_WRONLY, 8);
    takePipeEnd({ pid: process.pid, fd: r, flags: 0, what: 'pipe:[8]' }, 8, '1:8', both, 'pipes');
    checkPipePeers(both);
  } finally {
    closeFd(r);
  }
  // The read end closed: a write end with no reader anywhere comes back the same (EPIPE).
  checkPipePeers(end(w, O_WRONLY, 9));
  closeFd(w);
});
