import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create, toJson, type DescMessage, type JsonValue, type MessageShape } from '@bufbuild/protobuf';
import { critAvailable, critDecode, critRecode, quoteBigIntegers } from './crit.js';
import { writeImage } from './image-file.js';
import {
  IMAGE_KINDS, type FramedKindName, type GhostFileImage, type HeadImage, type ImageContent, type NameArg,
  type PayloadItem,
} from './image-kinds.js';
import { magicName } from './magic.js';
import { sampleFlatGhostFile, sampleImages } from './sample-images.js';
import { InventoryEntrySchema } from './gen/stasis/inventory_pb.js';
import { StatsEntrySchema } from './gen/stasis/stats_pb.js';

const HAVE_CRIT = critAvailable();
const skip = HAVE_CRIT ? false : 'crit is not installed (Debian package criu)';

type Msg = MessageShape<DescMessage>;

function json(schema: DescMessage, msg: Msg): Record<string, JsonValue> {
  return toJson(schema, msg, { useProtoFieldName: true }) as Record<string, JsonValue>;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** The entries crit prints for an image: messages with proto field names, raw data as `extra`. */
function critShape(kind: FramedKindName, content: unknown): Record<string, JsonValue>[] {
  const def = IMAGE_KINDS[kind];
  switch (def.layout) {
    case 'entries':
      return (content as Msg[]).map((m) => json(def.schema, m));
    case 'head': {
      const img = content as HeadImage<Msg, Msg>;
      return [json(def.headSchema, img.head), ...img.entries.map((m) => json(def.schema, m))];
    }
    case 'payload':
      return (content as PayloadItem<Msg>[]).map((i) => ({ ...json(def.schema, i.entry), extra: base64(i.payload) }));
    case 'ghost': {
      const img = content as GhostFileImage;
      const head = json(def.headSchema, img.head);
      if (!img.head.chunks) return [{ ...head, extra: base64(img.contents ?? new Uint8Array(0)) }];
      return [head, ...img.chunks.map((c) => ({ ...json(def.schema, c.entry), extra: base64(c.payload) }))];
    }
  }
}

/** Compares crit's JSON with ours: integers may be numbers or decimal strings, base64 may wrap lines. */
function assertSameAsCrit(crit: unknown, ours: JsonValue, where: string): void {
  if (Array.isArray(ours)) {
    assert.ok(Array.isArray(crit), `${where}: crit has no list`);
    assert.equal(crit.length, ours.length, `${where}: length`);
    ours.forEach((o, i) => assertSameAsCrit(crit[i], o, `${where}[${i}]`));
  } else if (ours !== null && typeof ours === 'object') {
    assert.ok(crit !== null && typeof crit === 'object', `${where}: crit has no object`);
    const c = crit as Record<string, unknown>;
    assert.deepEqual(Object.keys(c).sort(), Object.keys(ours).sort(), `${where}: fields`);
    for (const [k, v] of Object.entries(ours)) assertSameAsCrit(c[k], v, `${where}.${k}`);
  } else if (typeof ours === 'string' && (typeof crit === 'number' || typeof crit === 'string')) {
    assert.equal(String(crit).replace(/\n/g, ''), ours, where);
  } else {
    assert.equal(crit, ours, where);
  }
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-crit-'));
}

const samples = sampleImages();

for (const kind of Object.keys(samples) as FramedKindName[]) {
  const def = IMAGE_KINDS[kind];
  if (!def.critDecodes) continue;
  test(`crit decodes the ${def.pattern} stasis writes, with the same values`, { skip }, () => {
    const dir = tempDir();
    try {
      const { arg, content } = samples[kind] as { arg: NameArg<typeof kind>; content: ImageContent<typeof kind> };
      const file = writeImage(dir, kind, arg, content);
      const pretty = critDecode(file);
      assert.equal(pretty.magic, magicName(def.magic));
      const plain = critDecode(file, { pretty: false, exactIntegers: true });
      assertSameAsCrit(plain.entries, critShape(kind, content), kind);
      assert.deepEqual(critRecode(file), fs.readFileSync(file), 'crit encodes the same bytes');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('crit decodes a ghost file kept whole after its head entry', { skip }, () => {
  const dir = tempDir();
  try {
    const file = writeImage(dir, 'ghost-file', 0x77, sampleFlatGhostFile());
    assert.equal(path.basename(file), 'ghost-file-77.img');
    const plain = critDecode(file, { pretty: false });
    assertSameAsCrit(plain.entries, critShape('ghost-file', sampleFlatGhostFile()), 'ghost-file');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('crit skips the inventory fields newer than crit 3.17 and still decodes the rest', { skip }, () => {
  const dir = tempDir();
  try {
    const inv = create(InventoryEntrySchema, {
      imgVersion: 2, dumpCriuRunId: 'run-1', allowUprobes: true, pluginsEntry: { plugins: ['amdgpu'] },
    });
    const file = writeImage(dir, 'inventory', undefined, [inv]);
    const [entry] = critDecode(file, { pretty: false }).entries;
    assert.equal(entry?.['img_version'], 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('crit decodes a stats-dump.img with stasis\'s kcmp_calls field, skipping it as unknown', { skip }, () => {
  const dir = tempDir();
  try {
    const dump = {
      freezingTime: 1, frozenTime: 2, memdumpTime: 3, memwriteTime: 4, pagesScanned: 5n, pagesSkippedParent: 0n,
      pagesWritten: 6n, pagesLazy: 0n,
    };
    const file = writeImage(dir, 'stats', 'dump', [create(StatsEntrySchema, { dump: { ...dump, kcmpCalls: 12345n } })]);
    const [entry] = critDecode(file, { pretty: false }).entries;
    const got = entry?.['dump'] as Record<string, unknown>;
    assert.equal(got['pages_written'], 6);
    assert.equal(got['kcmp_calls'], undefined);
    // crit drops what it does not know: its re-encoding is the same stats without the field.
    const without = writeImage(tempDir(), 'stats', 'dump', [create(StatsEntrySchema, { dump })]);
    assert.deepEqual(critRecode(file), fs.readFileSync(without));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('quoteBigIntegers() keeps integers past 2^53 exact and leaves strings alone', () => {
  const text = '{"a": 18446744073709551615, "b": -9007199254740993, "c": 12, "d": "1234567890123456789", "e": 1.5}';
  assert.deepEqual(JSON.parse(quoteBigIntegers(text)),
    { a: '18446744073709551615', b: '-9007199254740993', c: 12, d: '1234567890123456789', e: 1.5 });
});

test('critDecode() throws with crit\'s complaint when crit cannot decode a file', { skip }, () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'pages-1.img');
    fs.writeFileSync(file, Buffer.alloc(16, 0x90));
    assert.throws(() => critDecode(file), /crit cannot decode .*pages-1\.img: Unknown magic/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
