import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMaps, parseMapsLine } from './maps.js';
import { ProcFormatError } from './proc-format-error.js';

// Captured from a test program on Linux 6.18 (paths renamed).
const MAPS = `55ce284ad000-55ce284ae000 r--p 00000000 fe:00 2146475                    /srv/demo/sample
55ce284b1000-55ce284b2000 rw-p 00003000 fe:00 2146475                    /srv/demo/sample
55ce2b6f4000-55ce2b715000 rw-p 00000000 00:00 0                          [heap]
7f18e0000000-7f18e0200000 rw-p 00000000 00:00 0 
7f18e07bd000-7f18e07bf000 ---p 00000000 00:00 0 
7f18e07bf000-7f18e07c3000 rw-s 00000000 00:01 4                          /dev/zero (deleted)
7f18e07c3000-7f18e07c4000 r--p 00000000 fe:00 2146474                    /srv/demo/deleted file (deleted)
7f18e07c4000-7f18e07c6000 rw-s 00000000 00:01 3                          /memfd:foo bar (deleted)
7f18e07c8000-7f18e07cc000 r--p 00000000 00:00 0                          [vvar]
7f18e07cc000-7f18e07ce000 r--p 00000000 00:00 0                          [vvar_vclock]
7f18e07ce000-7f18e07d0000 r-xp 00000000 00:00 0                          [vdso]
7f18e0801000-7f18e0803000 r--p 00031000 fe:00 338944                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7fffa9479000-7fffa949a000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`;

test('parseMaps() reads every field of a file mapping', () => {
  const [first] = parseMaps(MAPS);
  assert.deepEqual(first, {
    start: 0x55ce284ad000n,
    end: 0x55ce284ae000n,
    perms: { read: true, write: false, exec: false, shared: false },
    offset: 0n,
    dev: { major: 0xfe, minor: 0 },
    inode: 2146475n,
    path: '/srv/demo/sample',
    deleted: false,
  });
});

test('parseMaps() returns one entry a line, in order', () => {
  const maps = parseMaps(MAPS);
  assert.equal(maps.length, 14);
  assert.deepEqual(
    maps.map((m) => m.path),
    ['/srv/demo/sample', '/srv/demo/sample', '[heap]', '', '', '/dev/zero', '/srv/demo/deleted file', '/memfd:foo bar', '[vvar]', '[vvar_vclock]', '[vdso]', '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', '[stack]', '[vsyscall]'],
  );
});

test('parseMaps() keeps the deleted marker of an unlinked file', () => {
  const m = parseMaps(MAPS)[6];
  assert.equal(m?.path, '/srv/demo/deleted file');
  assert.equal(m?.deleted, true);
  assert.equal(m?.inode, 2146474n);
});

test('parseMaps() shows shared anonymous memory as deleted /dev/zero and a memfd by name', () => {
  const maps = parseMaps(MAPS);
  assert.deepEqual(maps[5]?.perms, { read: true, write: true, exec: false, shared: true });
  assert.deepEqual([maps[5]?.path, maps[5]?.deleted, maps[5]?.dev], ['/dev/zero', true, { major: 0, minor: 1 }]);
  assert.deepEqual([maps[7]?.path, maps[7]?.deleted], ['/memfd:foo bar', true]);
});

test('parseMaps() gives unnamed anonymous memory an empty path, trailing space or not', () => {
  const withSpace = parseMapsLine('7f18e0000000-7f18e0200000 rw-p 00000000 00:00 0 ');
  const without = parseMapsLine('7f18e0000000-7f18e0200000 rw-p 00000000 00:00 0');
  assert.equal(withSpace.path, '');
  assert.deepEqual(without, withSpace);
  assert.deepEqual(parseMaps(MAPS)[4]?.perms, { read: false, write: false, exec: false, shared: false });
});

test('parseMaps() keeps addresses above 2^53 exact', () => {
  const vsyscall = parseMaps(MAPS)[13];
  assert.equal(vsyscall?.start, 0xffffffffff600000n);
  assert.equal(vsyscall?.end, 0xffffffffff601000n);
  assert.ok((vsyscall?.start ?? 0n) > BigInt(Number.MAX_SAFE_INTEGER));
  assert.deepEqual(vsyscall?.perms, { read: false, write: false, exec: true, shared: false });
});

test('parseMaps() keeps spaces inside a path and the brackets of a named anonymous area', () => {
  const spaced = parseMapsLine('7f0000000000-7f0000001000 r--p 00001000 103:05 12 /home/a b/  two  spaces');
  assert.equal(spaced.path, '/home/a b/  two  spaces');
  assert.deepEqual(spaced.dev, { major: 0x103, minor: 5 });
  assert.equal(spaced.offset, 0x1000n);
  const named = parseMapsLine('7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [anon:my name]');
  assert.equal(named.path, '[anon:my name]');
  assert.equal(named.deleted, false);
});

test('parseMaps() reads a 20-bit minor and an inode above 2^53', () => {
  const m = parseMapsLine('7f0000000000-7f0000001000 r--p 00000000 00:1a3 9007199254741000 /overlay/file');
  assert.deepEqual(m.dev, { major: 0, minor: 0x1a3 });
  assert.equal(m.inode, 9007199254741000n);
});

test('parseMaps() of an empty file is an empty list', () => {
  assert.deepEqual(parseMaps(''), []);
});

test('parseMaps() names the line it cannot parse', () => {
  assert.throws(() => parseMaps('7f0000000000 rw-p 00000000 00:00 0\n'), (err: unknown) => {
    assert.ok(err instanceof ProcFormatError);
    assert.equal(err.code, 'E_PROC_FORMAT');
    assert.match(err.message, /7f0000000000 rw-p/);
    return true;
  });
  assert.throws(() => parseMapsLine('7f0000000000-7f0000001000 rwzp 00000000 00:00 0'), ProcFormatError);
  assert.throws(() => parseMapsLine('7f0000000000-7f00000g1000 rw-p 00000000 00:00 0'), /end address/);
});
