import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clearField, clone, create, toJson, type DescMessage, type JsonValue, type MessageShape } from '@bufbuild/protobuf';
import { critAvailable, critDecode, critDecodeAll, critRecode, quoteBigIntegers } from './crit.js';
import { writeImage } from './image-file.js';
import {
  IMAGE_KINDS, type FramedKindName, type GhostFileImage, type HeadImage, type ImageContent, type NameArg,
  type PayloadItem,
} from './image-kinds.js';
import { magicName } from './magic.js';
import { sampleFlatGhostFile, sampleImages } from './sample-images.js';
import { InventoryEntrySchema } from './gen/stasis/inventory_pb.js';
import { StatsEntrySchema } from './gen/stasis/stats_pb.js';
import { UsernsEntrySchema } from './gen/stasis/userns_pb.js';
import { FdTypes, FileEntrySchema } from './gen/stasis/fdinfo_pb.js';
import { IpcMsgSchema } from './gen/stasis/ipc-sysv_pb.js';
import { ipcMsgAt } from './ipc-msg-payload.js';
import { PagemapEntrySchema, type PagemapEntry, type PagemapHead } from './gen/stasis/pagemap_pb.js';

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
      return (content as PayloadItem<Msg>[]).map((i) => {
        const e = json(def.schema, i.entry);
        const b = Buffer.from(i.payload);
        // crit shows a segment's bytes without their padding, a set's values as numbers, a
        // queue's messages as IpcMsg and text, one after the other.
        if (kind === 'ipcns-shm') return { ...e, extra: base64(b.subarray(0, Number((i.entry as unknown as { size: bigint }).size))) };
        if (kind === 'ipcns-sem') return { ...e, extra: Array.from({ length: (i.entry as unknown as { nsems: number }).nsems }, (_, k) => b.readUInt16LE(k * 2)) };
        if (kind === 'ipcns-msg') {
          const extra: JsonValue[] = [];
          for (let at = 0; at < b.length; ) {
            const { msg, next } = ipcMsgAt(b, at);
            extra.push(json(IpcMsgSchema, msg), base64(b.subarray(next, next + msg.msize)));
            at = next + Math.ceil(msg.msize / 8) * 8;
          }
          return { ...e, extra };
        }
        // crit splits a TCP stream's data into its two queues.
        if (kind !== 'tcp-stream') return { ...e, extra: base64(i.payload) };
        const n = (i.entry as unknown as { inqLen: number }).inqLen;
        return { ...json(def.schema, i.entry), extra: { inq: base64(i.payload.subarray(0, n)), outq: base64(i.payload.subarray(n)) } };
      });
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

/**
 * crit 3.17 (Debian 12's) knows pagemap field 2 as nr_pages and not field 5 (CRIU 4.2's
 * 64-bit nr_pages, with field 2 renamed compat_nr_pages).
 */
function critLacksNrPages(kind: FramedKindName, entries: Record<string, unknown>[]): boolean {
  return (kind === 'pagemap' || kind === 'shmem-pagemap') && entries.slice(1).some((e) => !('compat_nr_pages' in e));
}

function withoutNrPages(e: PagemapEntry): PagemapEntry {
  const c = clone(PagemapEntrySchema, e);
  clearField(c, PagemapEntrySchema.field.nrPages);
  return c;
}

function asOldPagemap(shape: Record<string, JsonValue>[]): Record<string, JsonValue>[] {
  return shape.map((e, i) => {
    if (i === 0) return e;
    const { compat_nr_pages: count, nr_pages: _, ...rest } = e;
    return { ...rest, nr_pages: count ?? 0 };
  });
}

/**
 * crit 3.17 knows neither fd type PIDFD (20) nor FileEntry.pidfd (22, CRIU 4.2's): it shows a
 * pidfd's entry with its id alone, and cannot encode it again (its type is required).
 */
function critLacksPidfd(kind: FramedKindName, entries: Record<string, unknown>[]): boolean {
  return kind === 'files' && entries.some((e) => !('type' in e));
}

function asOldFiles(shape: Record<string, JsonValue>[]): Record<string, JsonValue>[] {
  return shape.map((e) => (e['type'] === 'PIDFD' ? { id: e['id'] ?? 0 } : e));
}

const made: string[] = [];
// (A test that fails or skips before its own rmSync leaves its directory: removed here.)
after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-crit-'));
  made.push(d);
  return d;
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
      const old = critLacksNrPages(kind, plain.entries);
      const noPidfd = critLacksPidfd(kind, plain.entries);
      assertSameAsCrit(plain.entries, old ? asOldPagemap(critShape(kind, content)) : noPidfd ? asOldFiles(critShape(kind, content)) : critShape(kind, content), kind);
      if (noPidfd) {
        // (What crit 3.17 writes back lacks the pidfds' types and entries: nothing to compare.)
      } else if (old) {
        // crit drops the field it does not know: its re-encoding is the same pagemap without it.
        const { head, entries } = content as HeadImage<PagemapHead, PagemapEntry>;
        const without = writeImage(tempDir(), kind, arg, { head, entries: entries.map(withoutNrPages) } as never);
        assert.deepEqual(critRecode(file), fs.readFileSync(without), 'crit encodes the same bytes');
      } else if (kind !== 'ipcns-shm') {
        // (crit 3.17's encoder of ipcns-shm fails on Python 3: base64.decodebytes() of a str.)
        assert.deepEqual(critRecode(file), fs.readFileSync(file), 'crit encodes the same bytes');
      }
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

test('crit decodes a userns-N.img with stasis\'s setgroups_deny field, skipping it as unknown', { skip }, () => {
  const dir = tempDir();
  try {
    const maps = { uidMap: [{ first: 0, lowerFirst: 100000, count: 1000 }], gidMap: [{ first: 0, lowerFirst: 100000, count: 1000 }] };
    const file = writeImage(dir, 'userns', 7, [create(UsernsEntrySchema, { ...maps, setgroupsDeny: true })]);
    const [entry] = critDecode(file, { pretty: false }).entries;
    assert.deepEqual(entry?.['uid_map'], [{ first: 0, lower_first: 100000, count: 1000 }]);
    assert.equal(entry?.['setgroups_deny'], undefined);
    const without = writeImage(tempDir(), 'userns', 7, [create(UsernsEntrySchema, maps)]);
    assert.deepEqual(critRecode(file), fs.readFileSync(without));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('crit decodes a files.img with stasis\'s multicast fields of a UDP socket, skipping them as unknown', { skip }, () => {
  const dir = tempDir();
  try {
    const isk = {
      id: 5, ino: 4242, family: 2, type: 2, proto: 17, state: 7, srcPort: 45400, dstPort: 0, flags: 2, backlog: 0,
      srcAddr: [0], dstAddr: [0], fown: { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 },
      opts: { soSndbuf: 212992, soRcvbuf: 212992, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n },
    };
    const mc = {
      mcGroups: [{ family: 2, group: [0x020101ef], ifname: 'mc0', fmode: 1, sources: [0x01004d0a] }],
      mcOpts: { ttl: 5, all: false },
    };
    const file = writeImage(dir, 'files', undefined, [create(FileEntrySchema, { type: FdTypes.INETSK, id: 5, isk: { ...isk, ...mc } })]);
    const [entry] = critDecode(file, { pretty: false }).entries;
    const got = entry?.['isk'] as Record<string, unknown>;
    assert.equal(got['src_port'], 45400);
    assert.equal(got['mc_groups'], undefined);
    // crit drops what it does not know: its re-encoding is the same socket without the fields.
    const without = writeImage(tempDir(), 'files', undefined, [create(FileEntrySchema, { type: FdTypes.INETSK, id: 5, isk })]);
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

test('critDecodeAll() decodes a whole image set in one go and names each file it cannot decode', { skip }, () => {
  const dir = tempDir();
  try {
    const good = (Object.keys(samples) as FramedKindName[]).filter((k) => IMAGE_KINDS[k].critDecodes).map((kind) => {
      const { arg, content } = samples[kind] as { arg: NameArg<typeof kind>; content: ImageContent<typeof kind> };
      return writeImage(fs.mkdtempSync(path.join(dir, 'k-')), kind, arg, content);
    });
    assert.ok(good.length > 10);
    critDecodeAll(good);
    const bad = path.join(dir, 'pages-1.img');
    fs.writeFileSync(bad, Buffer.alloc(16, 0x90));
    // A valid magic, then an entry of 5 bytes that are no protobuf message.
    const cut = path.join(dir, 'cut.img');
    const head = fs.readFileSync(good[0]!).subarray(0, 8);
    fs.writeFileSync(cut, Buffer.concat([head, Buffer.from([5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff])]));
    assert.throws(() => critDecodeAll([...good, bad, cut]), (e: Error) => e.message.includes('pages-1.img') && e.message.includes('cut.img') && !e.message.includes(good[0]!));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
