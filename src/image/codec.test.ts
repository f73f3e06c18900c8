import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import { StasisError } from '../errors.js';
import { decodeAnyImage, decodeImage, encodeImage } from './codec.js';
import { IMAGE_KINDS, type FramedKindName, type ImageContent } from './image-kinds.js';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, MAGIC } from './magic.js';
import { PE } from './pagemap-flags.js';
import { sampleFlatGhostFile, sampleImages } from './sample-images.js';
import { PstreeEntrySchema } from './gen/stasis/pstree_pb.js';
import { PagemapEntrySchema, PagemapHeadSchema } from './gen/stasis/pagemap_pb.js';
import { FdTypes, FileEntrySchema } from './gen/stasis/fdinfo_pb.js';
import { PipeDataEntrySchema } from './gen/stasis/pipe-data_pb.js';
import { MmEntrySchema } from './gen/stasis/mm_pb.js';
import { VmaEntrySchema } from './gen/stasis/vma_pb.js';

const FRAMED = (Object.keys(IMAGE_KINDS) as (keyof typeof IMAGE_KINDS)[])
  .filter((k): k is FramedKindName => IMAGE_KINDS[k].layout !== 'raw');

function encodeSample<K extends FramedKindName>(kind: K): Uint8Array {
  return encodeImage(kind, sampleImages()[kind].content as ImageContent<K>);
}

function words(bytes: Uint8Array, n: number): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: n }, (_, i) => v.getUint32(i * 4, true));
}

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

function join(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof StasisError) return err.code;
    throw err;
  }
  return 'no error';
}

test('encodeImage() starts images with the common head word and their magic', () => {
  assert.deepEqual(words(encodeSample('core'), 2), [IMG_COMMON_MAGIC, MAGIC.CORE]);
  assert.deepEqual(words(encodeSample('pagemap'), 2), [IMG_COMMON_MAGIC, MAGIC.PAGEMAP]);
});

test('encodeImage() gives stats the service head word and inventory no head word at all', () => {
  assert.deepEqual(words(encodeSample('stats'), 2), [IMG_SERVICE_MAGIC, MAGIC.STATS]);
  assert.deepEqual(words(encodeSample('inventory'), 1), [MAGIC.INVENTORY]);
});

test('encodeImage() frames each entry as a little-endian length and the message', () => {
  const entry = create(PstreeEntrySchema, { pid: 812, ppid: 1, pgid: 812, sid: 812, threads: [812] });
  const body = toBinary(PstreeEntrySchema, entry);
  const bytes = encodeImage('pstree', [entry]);
  assert.deepEqual(bytes, join(u32le(IMG_COMMON_MAGIC), u32le(MAGIC.PSTREE), u32le(body.length), body));
});

test('decodeImage() gives back what encodeImage() was given, for every kind', () => {
  for (const kind of FRAMED) {
    const content = sampleImages()[kind].content;
    const decoded = decodeImage(kind, encodeImage(kind, content as ImageContent<typeof kind>));
    assert.deepEqual(decoded, content, kind);
  }
});

test('re-encoding a decoded image gives the same bytes, for every kind', () => {
  for (const kind of FRAMED) {
    const bytes = encodeSample(kind);
    assert.deepEqual(encodeImage(kind, decodeImage(kind, bytes, { compat: false })), bytes, kind);
  }
  const flat = encodeImage('ghost-file', sampleFlatGhostFile());
  assert.deepEqual(encodeImage('ghost-file', decodeImage('ghost-file', flat)), flat);
});

test('decodeImage() reads a ghost file kept whole after its head entry', () => {
  const img = decodeImage('ghost-file', encodeImage('ghost-file', sampleFlatGhostFile()));
  assert.equal(new TextDecoder().decode(img.contents), 'hello ghost');
  assert.deepEqual(img.chunks, []);
});

test('decodeImage() keeps fields it does not know and re-encodes them unchanged', () => {
  // An external file entry: its ext field (15) is not declared by stasis yet.
  const known = toBinary(FileEntrySchema, create(FileEntrySchema, { type: FdTypes.EXT, id: 7 }));
  const ext = Uint8Array.of(0x7a, 4, 0x08, 7, 0x10, 1); // tag 15, length 4, {1: 7, 2: 1}
  const body = join(known, ext);
  const bytes = join(u32le(IMG_COMMON_MAGIC), u32le(MAGIC.FILES), u32le(body.length), body);
  const [entry] = decodeImage('files', bytes);
  assert.equal(entry?.id, 7);
  assert.deepEqual(encodeImage('files', decodeImage('files', bytes)), bytes);
});

/** Offsets where an image of plain entries may end: after the magic, and after each entry. */
function boundaries(bytes: Uint8Array, start: number): Set<number> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Set([start]);
  for (let off = start; off < bytes.length;) {
    off += 4 + v.getUint32(off, true);
    out.add(off);
  }
  return out;
}

test('decodeImage() rejects an image cut inside an entry with E_TRUNCATED, at every byte', () => {
  const bytes = encodeSample('pstree');
  const ends = boundaries(bytes, 8);
  for (let cut = 0; cut < bytes.length; cut++) {
    const short = bytes.subarray(0, cut);
    if (ends.has(cut)) {
      // The format has no entry count: an image cut between entries is a valid shorter image.
      assert.equal(decodeImage('pstree', short).length, [...ends].filter((e) => e < cut).length, `cut at ${cut}`);
    } else {
      assert.equal(code(() => decodeImage('pstree', short)), 'E_TRUNCATED', `cut at ${cut}`);
    }
  }
});

test('decodeImage() rejects a cut pagemap, pipe data or chunked ghost file cleanly, at every byte', () => {
  for (const kind of ['pagemap', 'pipes-data', 'ghost-file', 'core'] as const) {
    const bytes = encodeSample(kind);
    for (let cut = 0; cut < bytes.length; cut++) {
      const got = code(() => decodeImage(kind, bytes.subarray(0, cut)));
      assert.ok(['E_TRUNCATED', 'E_CORRUPT', 'no error'].includes(got), `${kind} cut at ${cut}: ${got}`);
    }
    // The header alone lacks the head entry these layouts require.
    if (kind === 'pagemap' || kind === 'ghost-file') assert.equal(code(() => decodeImage(kind, bytes.subarray(0, 8))), 'E_TRUNCATED');
  }
});

test('decodeImage() names the file, the offset and the missing bytes of a truncated entry', () => {
  const bytes = encodeSample('core');
  assert.throws(() => decodeImage('core', bytes.subarray(0, 300), { fileName: 'core-812.img' }), (err) => {
    assert.ok(err instanceof StasisError);
    assert.equal(err.code, 'E_TRUNCATED');
    assert.match(err.message, /^Image core-812\.img is truncated: entry at offset 8 needs \d+ bytes, 288 remain$/);
    return true;
  });
});

test('decodeImage() rejects pipe data shorter than its entry announces', () => {
  const entry = create(PipeDataEntrySchema, { pipeId: 1, bytes: 100 });
  const bytes = encodeImage('pipes-data', [{ entry, payload: new Uint8Array(100) }]);
  assert.throws(() => decodeImage('pipes-data', bytes.subarray(0, bytes.length - 1)),
    /truncated: data at offset \d+ \(after the entry at offset 8\) needs 100 bytes, 99 remain/);
});

test('decodeImage() rejects a wrong magic with E_BAD_MAGIC', () => {
  const core = encodeSample('core');
  assert.equal(code(() => decodeImage('pstree', core)), 'E_BAD_MAGIC');
  assert.throws(() => decodeImage('pstree', core, { fileName: 'pstree.img' }),
    /Image pstree\.img has common head word and magic 0x55053847 \(CORE\), expected common head word and magic 0x50273030 \(PSTREE\)/);
  // The right magic behind the wrong head word, and inventory behind a head word it never has.
  const stats = encodeSample('stats');
  const statsAsCommon = join(u32le(IMG_COMMON_MAGIC), stats.subarray(4));
  assert.equal(code(() => decodeImage('stats', statsAsCommon)), 'E_BAD_MAGIC');
  const inv = encodeSample('inventory');
  assert.equal(code(() => decodeImage('inventory', join(u32le(IMG_COMMON_MAGIC), inv))), 'E_BAD_MAGIC');
});

test('decodeImage() refuses an entry longer than the limit before reading it', () => {
  const bytes = join(u32le(IMG_COMMON_MAGIC), u32le(MAGIC.PSTREE), u32le(0xffffffff));
  assert.throws(() => decodeImage('pstree', bytes),
    (err) => err instanceof StasisError && err.code === 'E_CORRUPT' && /claims 4294967295 bytes/.test(err.message));
  assert.equal(code(() => decodeImage('pstree', join(bytes.subarray(0, 8), u32le(100), new Uint8Array(100)),
    { maxEntrySize: 64 })), 'E_CORRUPT');
});

test('decodeImage() turns an invalid protobuf entry into E_CORRUPT', () => {
  const body = Uint8Array.of(0x0a, 0xff, 0xff);
  const bytes = join(u32le(IMG_COMMON_MAGIC), u32le(MAGIC.PSTREE), u32le(body.length), body);
  assert.throws(() => decodeImage('pstree', bytes, { fileName: 'pstree.img' }),
    (err) => err instanceof StasisError && err.code === 'E_CORRUPT' && /pstree\.img is corrupt: entry at offset 8/.test(err.message));
});

test('decodeImage() rejects an entry that lacks a required field, as CRIU does', () => {
  // pid, ppid and pgid, but no sid.
  const body = Uint8Array.of(0x08, 1, 0x10, 0, 0x18, 1);
  const bytes = join(u32le(IMG_COMMON_MAGIC), u32le(MAGIC.PSTREE), u32le(body.length), body);
  assert.throws(() => decodeImage('pstree', bytes), /lacks required field sid/);
});

test('encodeImage() refuses a message that lacks a required field', () => {
  const entry = create(PstreeEntrySchema, { pid: 1, ppid: 0, pgid: 1 });
  assert.throws(() => encodeImage('pstree', [entry]),
    (err) => err instanceof StasisError && err.code === 'E_CORRUPT' && /entry 0 \(PstreeEntry\) lacks required field sid/.test(err.message));
});

test('encodeImage() names the first required field left unset inside nested and repeated messages, and takes a whole entry', () => {
  const vma = (fd?: bigint) => create(VmaEntrySchema, { start: 0x1000n, end: 0x2000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 1, ...(fd === undefined ? {} : { fd }) });
  const mm = (vmas: ReturnType<typeof vma>[]) => create(MmEntrySchema, {
    mmStartCode: 1n, mmEndCode: 2n, mmStartData: 3n, mmEndData: 4n, mmStartStack: 5n, mmStartBrk: 6n, mmBrk: 7n,
    mmArgStart: 8n, mmArgEnd: 9n, mmEnvStart: 10n, mmEnvEnd: 11n, exeFileId: 12, vmas,
  });
  assert.throws(() => encodeImage('mm', [mm([vma(-1n), vma(-1n), vma()])]),
    (err) => err instanceof StasisError && err.code === 'E_CORRUPT' && /entry 0 \(MmEntry\) lacks required field vmas\[2\]\.fd$/.test(err.message));
  const whole = mm([vma(-1n), vma(-1n), vma(-1n)]);
  assert.deepEqual(decodeImage('mm', encodeImage('mm', [whole])), [whole]);
  // An optional message left out is not looked into: the image's aios and a VMA list that is empty.
  assert.deepEqual(decodeImage('mm', encodeImage('mm', [mm([])])), [mm([])]);
});

test('encodeImage() refuses pipe data whose entry announces another length', () => {
  const entry = create(PipeDataEntrySchema, { pipeId: 1, bytes: 3 });
  assert.throws(() => encodeImage('pipes-data', [{ entry, payload: new Uint8Array(4) }]), /announces 3 bytes of data but carries 4/);
});

test('encodeImage() and decodeImage() refuse raw pages images', () => {
  assert.equal(code(() => decodeImage('pages' as FramedKindName, new Uint8Array(4096))), 'E_BAD_ARGS');
});

test('decodeImage() gives old pagemap entries PE_PRESENT, or PE_PARENT when in_parent is set', () => {
  const head = create(PagemapHeadSchema, { pagesId: 1 });
  const old = [
    create(PagemapEntrySchema, { vaddr: 0x1000n, compatNrPages: 1 }),
    create(PagemapEntrySchema, { vaddr: 0x2000n, compatNrPages: 2, inParent: true }),
    create(PagemapEntrySchema, { vaddr: 0x4000n, compatNrPages: 1, flags: PE.LAZY }),
  ];
  const bytes = encodeImage('pagemap', { head, entries: old });
  assert.deepEqual(decodeImage('pagemap', bytes).entries.map((e) => e.flags), [PE.PRESENT, PE.PARENT, PE.LAZY]);
  // Without the normaliser the entries stay as written, so they re-encode to the same bytes.
  const raw = decodeImage('pagemap', bytes, { compat: false });
  assert.deepEqual(raw.entries.map((e) => e.flags), [0, 0, PE.LAZY]);
  assert.deepEqual(encodeImage('pagemap', raw), bytes);
});

test('decodeAnyImage() finds the kind from the magic, and pagemap-shmem from the file name', () => {
  assert.equal(decodeAnyImage(encodeSample('core')).kind, 'core');
  assert.equal(decodeAnyImage(encodeSample('inventory')).kind, 'inventory');
  assert.equal(decodeAnyImage(encodeSample('stats')).kind, 'stats');
  const shmem = encodeSample('shmem-pagemap');
  assert.equal(decodeAnyImage(shmem, { fileName: 'pagemap-shmem-3.img' }).kind, 'shmem-pagemap');
  assert.equal(decodeAnyImage(shmem, { fileName: 'pagemap-812.img' }).kind, 'pagemap');
  assert.equal(decodeAnyImage(encodeSample('signal-private'), { fileName: '/x/signal-p-813.img' }).kind, 'signal-private');
});

test('decodeAnyImage() rejects an unknown magic, and says when the file is a raw image', () => {
  const pages = new Uint8Array(4096).fill(0x90);
  assert.throws(() => decodeAnyImage(pages, { fileName: 'pages-1.img' }), /pages-1\.img is a raw image/);
  assert.throws(() => decodeAnyImage(pages, { fileName: 'junk.img' }),
    (err) => err instanceof StasisError && err.code === 'E_BAD_MAGIC' && /0x90909090, which no image kind has/.test(err.message));
});
