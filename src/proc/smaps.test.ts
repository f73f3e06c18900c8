import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parseSmaps, vmaFlags } from './smaps.js';
import { ProcFormatError } from './proc-format-error.js';

// A test program's smaps on Linux 6.18, with a MAP_NORESERVE area given MADV_DONTDUMP and
// MADV_HUGEPAGE, MAP_GROWSDOWN, MADV_MERGEABLE/NOHUGEPAGE/WIPEONFORK, a MAP_LOCKED shared
// anonymous area with MADV_DONTFORK, a memfd and an unlinked file.
const SMAPS = fs.readFileSync(new URL('../../../src/proc/fixtures/smaps-6.18.txt', import.meta.url), 'utf8');

const at = (start: bigint) => {
  const v = parseSmaps(SMAPS).find((e) => e.start === start);
  assert.ok(v, `no VMA at 0x${start.toString(16)}`);
  return v;
};

test('parseSmaps() returns every VMA with its maps fields', () => {
  const vmas = parseSmaps(SMAPS);
  assert.equal(vmas.length, 31);
  assert.equal(vmas[0]?.path, '/srv/demo/sample');
  assert.equal(vmas[30]?.path, '[vsyscall]');
  assert.equal(vmas[30]?.start, 0xffffffffff600000n);
});

test('parseSmaps() gives sizes in bytes', () => {
  const libc = at(0x7f18e0601000n);
  assert.equal(libc.size, 0x7f18e0757000 - 0x7f18e0601000);
  assert.equal(libc.rss, 892 * 1024);
  assert.equal(libc.anonymous, 0);
  assert.equal(libc.sizes.get('KernelPageSize'), 4096);
  assert.equal(libc.sizes.get('Pss_Dirty'), 0);
  assert.equal(libc.thpEligible, false);
});

test('parseSmaps() keeps the VmFlags mnemonics as a set', () => {
  assert.deepEqual([...at(0x7f18e0601000n).vmFlags], ['rd', 'ex', 'mr', 'mw', 'me']);
  assert.deepEqual([...at(0xffffffffff600000n).vmFlags], ['ex']);
});

test('vmaFlags() reads MAP_NORESERVE, MADV_DONTDUMP and MADV_HUGEPAGE', () => {
  const v = at(0x7f18e0000000n);
  assert.equal(v.thpEligible, true);
  const f = vmaFlags(v);
  assert.deepEqual([f.noReserve, f.dontDump, f.hugepage, f.shared, f.growsDown], [true, true, true, false, false]);
});

test('vmaFlags() reads MAP_GROWSDOWN', () => {
  assert.equal(vmaFlags(at(0x7f18e05d4000n)).growsDown, true);
});

test('vmaFlags() reads MADV_MERGEABLE, MADV_NOHUGEPAGE and MADV_WIPEONFORK', () => {
  const f = vmaFlags(at(0x7f18e04d0000n));
  assert.deepEqual([f.mergeable, f.noHugepage, f.wipeOnFork, f.hugepage], [true, true, true, false]);
});

test('vmaFlags() reads MAP_LOCKED and MADV_DONTFORK on shared anonymous memory', () => {
  const v = at(0x7f18e07bf000n);
  assert.deepEqual([v.path, v.deleted, v.locked], ['/dev/zero', true, 16384]);
  const f = vmaFlags(v);
  assert.deepEqual([f.shared, f.locked, f.dontFork], [true, true, true]);
});

test('vmaFlags() marks [vvar] as I/O and PFN-mapped memory', () => {
  const v = at(0x7f18e07c8000n);
  assert.equal(v.path, '[vvar]');
  const f = vmaFlags(v);
  assert.deepEqual([f.io, f.pfnMap, f.dontDump], [true, true, true]);
});

test('vmaFlags() reports no soft-dirty on a kernel built without it', () => {
  assert.ok(parseSmaps(SMAPS).every((v) => !vmaFlags(v).softDirty));
  assert.equal(vmaFlags({ perms: { read: true, write: true, exec: false, shared: false }, vmFlags: new Set(['rd', 'sd', 'uw', 'sl']) }).softDirty, true);
});

test('parseSmaps() keeps lines that are not sizes, such as ProtectionKey', () => {
  const text = `7f0000000000-7f0000001000 rw-p 00000000 00:00 0 
Size:                  4 kB
Rss:                   4 kB
Pss:                   4 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         4 kB
Referenced:            4 kB
Anonymous:             4 kB
AnonHugePages:         0 kB
Swap:                  0 kB
Locked:                0 kB
ProtectionKey:         3
Future_Thing:          yes
VmFlags: rd wr mr mw me ac 
`;
  const [v] = parseSmaps(text);
  assert.equal(v?.protectionKey, 3);
  assert.equal(v?.extra.get('Future_Thing'), 'yes');
  assert.equal(v?.thpEligible, undefined);
});

test('parseSmaps() of an empty file is an empty list', () => {
  assert.deepEqual(parseSmaps(''), []);
});

test('parseSmaps() refuses a VMA without its Rss line', () => {
  const text = SMAPS.split('\n').filter((l) => !l.startsWith('Rss:')).join('\n');
  assert.throws(() => parseSmaps(text), (err: unknown) => err instanceof ProcFormatError && /no Rss line/.test(err.message));
});
