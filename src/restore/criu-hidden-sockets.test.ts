import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { writeImage } from '../image/index.js';
import { MntEntrySchema } from '../image/gen/stasis/mnt_pb.js';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { markHiddenSocketFiles } from './criu-hidden-sockets.js';

const mount = (mntId: number, parentMntId: number, mountpoint: string) =>
  create(MntEntrySchema, { fstype: 5, mntId, rootDev: mntId, parentMntId, flags: 0, root: '/', mountpoint, source: 'x', options: '' });
const sock = (id: number, name: string, nameDir: string | undefined, mntId: number): FileEntry => create(FileEntrySchema, {
  type: FdTypes.UNIXSK, id,
  usk: { id, ino: id, type: 1, state: 1, flags: 2, uflags: 0, backlog: 0, peer: 0, name: Buffer.from(name), ...(nameDir ? { nameDir } : {}), mntId },
});

test('a socket of a CRIU image whose file a mount below its own covers is marked hidden (bound from a clone of its directory\'s mount), others are not; an absolute name there is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-hidden-'));
  try {
    // As zdtm overmount_sock: a tmpfs (70) over /zdtm/static/over, a socket bound there before, from /zdtm/static, on the root mount (91).
    writeImage(dir, 'mountpoints', 14, [mount(70, 91, '/zdtm/static/over'), mount(69, 91, '/dev/pts'), mount(91, 1, '/')]);
    const files = new Map([
      [12, sock(12, 'over/foo', '/zdtm/static', 91)],
      [13, sock(13, 'free/foo', '/zdtm/static', 91)],
      [14, sock(14, 'bar', '/zdtm/static/over', 70)], // bound on the tmpfs itself
      [15, sock(15, '\0abstract', undefined, 91)],
    ]);
    markHiddenSocketFiles(dir, files);
    assert.deepEqual([...files.values()].map((f) => f.usk!.hidden), [true, false, false, false]);
    const abs = new Map([[16, sock(16, '/zdtm/static/over/foo', undefined, 91)]]);
    assert.throws(() => markHiddenSocketFiles(dir, abs), (e: Error & { code?: string }) => e.code === 'E_UNSUPPORTED' && /mount at \/zdtm\/static\/over covers/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
