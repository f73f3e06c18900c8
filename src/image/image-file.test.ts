import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { StasisError } from '../errors.js';
import { encodeImage } from './codec.js';
import { imageExists, imagePath, readImage, readImageFile, writeImage } from './image-file.js';
import { ImageWriter } from './image-writer.js';
import { PE } from './pagemap-flags.js';
import { pagemapEntry } from './compat.js';
import { sampleFlatGhostFile, sampleImages } from './sample-images.js';
import { PagemapEntrySchema, PagemapHeadSchema } from './gen/stasis/pagemap_pb.js';
import { PipeDataEntrySchema } from './gen/stasis/pipe-data_pb.js';
import { PstreeEntrySchema } from './gen/stasis/pstree_pb.js';

function withDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-image-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('imagePath() follows CRIU\'s file names, with ghost file ids in hex', () => {
  assert.equal(imagePath('/d', 'core', 812), '/d/core-812.img');
  assert.equal(imagePath('/d', 'shmem-pagemap', 3), '/d/pagemap-shmem-3.img');
  assert.equal(imagePath('/d', 'pages', 1), '/d/pages-1.img');
  assert.equal(imagePath('/d', 'ghost-file', 255), '/d/ghost-file-ff.img');
  assert.equal(imagePath('/d', 'stats', 'dump'), '/d/stats-dump.img');
  assert.equal(imagePath('/d', 'file-locks', undefined), '/d/filelocks.img');
  assert.equal(imagePath('/d', 'memfd-inode', undefined), '/d/memfd.img');
});

test('writeImage() and readImage() keep a pagemap\'s head and entries', () => {
  withDir((dir) => {
    const { content } = sampleImages().pagemap;
    writeImage(dir, 'pagemap', 812, content);
    assert.ok(imageExists(dir, 'pagemap', 812));
    assert.ok(!imageExists(dir, 'pagemap', 813));
    const back = readImage(dir, 'pagemap', 812);
    assert.equal(back.head.pagesId, 1);
    assert.deepEqual(back.entries, content.entries);
    assert.deepEqual(fs.readdirSync(dir), ['pagemap-812.img']);
  });
});

test('writeImage() carries the raw bytes after each pipe data entry', () => {
  withDir((dir) => {
    const payload = Buffer.from('hello');
    writeImage(dir, 'pipes-data', undefined, [{ entry: create(PipeDataEntrySchema, { pipeId: 9, bytes: 5 }), payload }]);
    const [item] = readImage(dir, 'pipes-data', undefined);
    assert.equal(item?.entry.pipeId, 9);
    assert.equal(Buffer.from(item?.payload ?? []).toString(), 'hello');
  });
});

test('readImage() of an image that is not there fails with E_NO_IMAGE', () => {
  withDir((dir) => {
    assert.throws(() => readImage(dir, 'core', 812), (err) =>
      err instanceof StasisError && err.code === 'E_NO_IMAGE' && err.message === `No core-812.img in ${dir}`);
  });
});

test('readImage() names the file in a decoding error', () => {
  withDir((dir) => {
    fs.writeFileSync(path.join(dir, 'pstree.img'), Buffer.from([0x19, 0x43, 0x56, 0x54, 0x30]));
    assert.throws(() => readImage(dir, 'pstree', undefined), /^StasisError: Image pstree\.img is truncated: magic at offset 4/);
  });
});

test('readImageFile() finds any image\'s kind from its magic', () => {
  withDir((dir) => {
    const samples = sampleImages();
    const core = writeImage(dir, 'core', 812, samples.core.content);
    const shmem = writeImage(dir, 'shmem-pagemap', 3, samples['shmem-pagemap'].content);
    const got = readImageFile(core);
    assert.equal(got.kind, 'core');
    if (got.kind === 'core') assert.equal(got.content[0]?.tc?.comm, 'counter');
    assert.equal(readImageFile(shmem).kind, 'shmem-pagemap');
    assert.throws(() => readImageFile(path.join(dir, 'inventory.img')), (err) => err instanceof StasisError && err.code === 'E_NO_IMAGE');
  });
});

test('ImageWriter writes the same bytes as writeImage(), in blocks', () => {
  withDir((dir) => {
    const head = create(PagemapHeadSchema, { pagesId: 4 });
    const entries = Array.from({ length: 20000 }, (_, i) =>
      pagemapEntry(0x400000n + BigInt(i) * 0x2000n, 1, PE.PRESENT));
    const w = ImageWriter.open(dir, 'pagemap', 77, head);
    for (const e of entries) w.append(e);
    assert.ok(!imageExists(dir, 'pagemap', 77), 'the image appears only when closed');
    w.close();
    assert.deepEqual(fs.readFileSync(imagePath(dir, 'pagemap', 77)), Buffer.from(encodeImage('pagemap', { head, entries })));
    assert.deepEqual(fs.readdirSync(dir), ['pagemap-77.img']);
  });
});

test('ImageWriter.abort() leaves no file behind', () => {
  withDir((dir) => {
    const w = ImageWriter.open(dir, 'pstree', undefined);
    w.append(create(PstreeEntrySchema, { pid: 1, ppid: 0, pgid: 1, sid: 1 }));
    assert.throws(() => w.append(create(PstreeEntrySchema, { pid: 2 })), /lacks required field ppid/);
    w.abort();
    w.abort();
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.throws(() => w.close(), /already closed/);
  });
});

test('ImageWriter streams ghost file chunks, or whole contents when the head says no chunks', () => {
  withDir((dir) => {
    const chunked = sampleImages()['ghost-file'].content;
    const w = ImageWriter.open(dir, 'ghost-file', 1, chunked.head);
    for (const c of chunked.chunks) w.append(c);
    assert.throws(() => w.appendContents(new Uint8Array(1)), /takes entries/);
    w.close();
    assert.deepEqual(readImage(dir, 'ghost-file', 1), chunked);

    const flat = sampleFlatGhostFile();
    const f = ImageWriter.open(dir, 'ghost-file', 2, flat.head);
    f.appendContents(Buffer.from('hello '));
    f.appendContents(Buffer.from('ghost'));
    f.close();
    assert.equal(Buffer.from(readImage(dir, 'ghost-file', 2).contents ?? []).toString(), 'hello ghost');
  });
});

test('ImageWriter refuses raw pages images', () => {
  withDir((dir) => {
    assert.throws(() => ImageWriter.open(dir, 'pages', 1 as never), (err) => err instanceof StasisError && err.code === 'E_BAD_ARGS');
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});
