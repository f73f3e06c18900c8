import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import { tarTree, untarTree } from './tar-lite.js';
import { mknodAt } from '../sys/index.js';

const root = process.getuid?.() === 0;
const TAR = ['--create', '--gzip', '--one-file-system', '--numeric-owner', '--preserve-permissions', '--sparse'];

/** What `tar -tv` says of an archive: mode, owner, size or device, name, link (its mtime too, in seconds). */
const listing = (file: string) => spawnSync('tar', ['-tvzf', file, '--numeric-owner', '--full-time'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();

/** Every path under `dir` with what tar keeps of it. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = path.join(dir, rel), st = fs.lstatSync(p);
    const what = st.isSymbolicLink() ? `-> ${fs.readlinkSync(p)}` : st.isFile() ? fs.readFileSync(p, 'hex') : st.isCharacterDevice() || st.isBlockDevice() ? `rdev ${st.rdev}` : '';
    out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isSymbolicLink() ? '' : Math.floor(st.mtimeMs / 1000)} ${what}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(rel, n));
  };
  walk('.');
  return out;
}

function sample(dir: string): void {
  fs.mkdirSync(path.join(dir, 'sub/deeper'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'sub/file'), 'hello\n');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.writeFileSync(path.join(dir, 'suid'), Buffer.alloc(3000, 7));
  fs.chmodSync(path.join(dir, 'suid'), 0o4755);
  fs.symlinkSync('/proc/self/fd/2', path.join(dir, 'stderr'));
  fs.symlinkSync('sub/file', path.join(dir, 'rel'));
  mknodAt(path.join(dir, 'null'), 0o020666, (1 << 8) | 3);
  mknodAt(path.join(dir, 'fifo'), 0o010640, 0);
  fs.chownSync(path.join(dir, 'sub/file'), 1234, 5678);
  fs.lchownSync(path.join(dir, 'rel'), 99, 98);
  fs.chmodSync(path.join(dir, 'sub'), 0o1777);
  fs.chmodSync(path.join(dir, 'sub/deeper'), 0o555);
  fs.chmodSync(dir, 0o750);
  const old = new Date('2024-03-04T05:06:07Z');
  for (const p of ['sub/file', 'suid', 'null', 'fifo', 'sub/deeper', 'sub', '.']) fs.utimesSync(path.join(dir, p), old, old);
  fs.lutimesSync(path.join(dir, 'rel'), old, old);
}

test('tarTree() writes the archive tar writes of a plain tree, and untarTree() puts it back as tar does', { skip: !root && 'needs root (device nodes, owners)' }, () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-tar-'));
  try {
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    sample(src);
    const ours = path.join(base, 'ours.tgz'), theirs = path.join(base, 'theirs.tgz');
    const gz = tarTree(src);
    assert.ok(gz, 'a plain tree is written');
    // Through a /proc/self/fd link to the directory, as a dump reaches a tmpfs's detached clone.
    const fd = fs.openSync(src, 'r');
    try {
      assert.deepEqual(tarTree(`/proc/self/fd/${fd}`), gz);
    } finally {
      fs.closeSync(fd);
    }
    fs.writeFileSync(ours, gz);
    assert.equal(spawnSync('tar', [...TAR, '--directory', src, '--file', theirs, '.']).status, 0);
    assert.deepEqual(listing(ours), listing(theirs));
    // Ours and tar's archives, each put back by untarTree and by tar: the same tree as the source.
    const want = tree(src);
    for (const [name, file] of [['ours', ours], ['theirs', theirs]] as const) {
      const a = path.join(base, `${name}-lite`), b = path.join(base, `${name}-tar`);
      fs.mkdirSync(a);
      fs.mkdirSync(b);
      assert.equal(untarTree(fs.readFileSync(file), a), true, name);
      assert.equal(spawnSync('tar', ['--extract', '--gzip', '--numeric-owner', '--preserve-permissions', '--directory', b, '--file', file]).status, 0);
      assert.deepEqual(tree(a), want, `${name} by untarTree`);
      assert.deepEqual(tree(b), want, `${name} by tar`);
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('what a ustar header cannot say exactly is left to tar: hard links, holes, long names, names not UTF-8, a socket is left out', { skip: !root && 'needs root' }, () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-tar-'));
  try {
    const cases: [string, (d: string) => void][] = [
      ['hard link', (d) => { fs.writeFileSync(path.join(d, 'a'), 'x'); fs.linkSync(path.join(d, 'a'), path.join(d, 'b')); }],
      ['hole', (d) => { const fd = fs.openSync(path.join(d, 'h'), 'w'); fs.writeSync(fd, 'x', 1 << 20); fs.closeSync(fd); }],
      ['long name', (d) => fs.writeFileSync(path.join(d, 'n'.repeat(120)), '')],
      ['not UTF-8', (d) => fs.writeFileSync(Buffer.concat([Buffer.from(`${d}/`), Buffer.from([0xff, 0x41])]), '')],
    ];
    for (const [what, make] of cases) {
      const d = fs.mkdtempSync(path.join(base, 'c-'));
      make(d);
      assert.equal(tarTree(d), undefined, what);
    }
    // A long path that a prefix and a name hold is written.
    const d = fs.mkdtempSync(path.join(base, 'p-'));
    const deep = path.join(d, 'd'.repeat(90), 'e'.repeat(90));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'f'), 'in deep');
    const gz = tarTree(d)!;
    const f = path.join(base, 'deep.tgz');
    fs.writeFileSync(f, gz);
    assert.ok(listing(f).some((l) => l.endsWith(`./${'d'.repeat(90)}/${'e'.repeat(90)}/f`)), listing(f).join('\n'));
    const back = fs.mkdtempSync(path.join(base, 'b-'));
    assert.equal(untarTree(gz, back), true);
    assert.equal(fs.readFileSync(path.join(back, 'd'.repeat(90), 'e'.repeat(90), 'f'), 'utf8'), 'in deep');
    // A socket: tar leaves it out, and so does this.
    const s = fs.mkdtempSync(path.join(base, 's-'));
    spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind('${s}/sock')`]);
    assert.ok(fs.lstatSync(path.join(s, 'sock')).isSocket());
    const sf = path.join(base, 's.tgz');
    fs.writeFileSync(sf, tarTree(s)!);
    assert.deepEqual(listing(sf).map((l) => l.split(' ').pop()), ['./']);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('untarTree() touches nothing and leaves to tar an archive with a long-name entry, a damaged header, an entry whose place is taken, or a name out of the tree', { skip: !root && 'needs root' }, () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-tar-'));
  try {
    const gnu = path.join(base, 'gnu.tgz'), src = path.join(base, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'x'.repeat(150)), 'long');
    assert.equal(spawnSync('tar', [...TAR, '--directory', src, '--file', gnu, '.']).status, 0);
    const fresh = () => fs.mkdtempSync(path.join(base, 'to-'));
    let to = fresh();
    assert.equal(untarTree(fs.readFileSync(gnu), to), false);
    assert.deepEqual(fs.readdirSync(to), []);
    // A plain archive, damaged: one byte of a header.
    fs.rmSync(path.join(src, 'x'.repeat(150)));
    fs.writeFileSync(path.join(src, 'a'), 'a');
    const plain = zlib.gunzipSync(tarTree(src)!);
    const bad = Buffer.from(plain);
    bad[BLOCK_NAME_AT + 512] = bad[BLOCK_NAME_AT + 512]! ^ 1; // the second header's name
    to = fresh();
    assert.equal(untarTree(zlib.gzipSync(bad), to), false);
    assert.equal(untarTree(Buffer.from('not gzip'), to), false);
    assert.equal(untarTree(zlib.gzipSync(plain.subarray(0, 512)), to), false, 'cut short');
    assert.deepEqual(fs.readdirSync(to), []);
    // A file where the archive has one: left to tar.
    fs.writeFileSync(path.join(to, 'a'), 'mine');
    assert.equal(untarTree(zlib.gzipSync(plain), to), false);
    assert.equal(fs.readFileSync(path.join(to, 'a'), 'utf8'), 'mine');
    // A name that leaves the tree.
    const out = Buffer.from(plain);
    out.write('../escape\u0000', 512, 'latin1');
    let sum = 0;
    out.fill(0x20, 512 + 148, 512 + 156);
    for (let i = 512; i < 1024; i++) sum += out[i]!;
    out.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 512 + 148, 'latin1');
    to = fresh();
    assert.equal(untarTree(zlib.gzipSync(out), to), false);
    assert.ok(!fs.existsSync(path.join(base, 'escape')));
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

const BLOCK_NAME_AT = 0;
