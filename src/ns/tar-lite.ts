// A tmpfs's files as CRIU keeps them (tmpfs-dev-N.tar.gz.img: a gzipped tar of the tmpfs's
// root, `tar --create --gzip --one-file-system --numeric-owner --preserve-permissions --sparse`),
// written and read here for the small, plain trees a container's tmpfs mounts hold (/dev with
// its nodes and links, empty /dev/shm, /run, /sys/fs/cgroup's mountpoints): each run of tar
// (and of the gzip it starts) cost about 10 ms of the frozen time per tmpfs, and about 6 at
// restore. Only what a POSIX ustar header says exactly is taken: directories, regular files
// of one link and no holes, symbolic links, device nodes and FIFOs, with their mode, owner and
// mtime (seconds, as tar keeps it), names of UTF-8 that fit a header; anything else (a hard
// link, a sparse or big file, a long name, another filesystem under it) is left to tar itself,
// as is an archive with anything but those entries. Sockets are left out, as tar leaves them.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { mknodAt } from '../sys/index.js';

const BLOCK = 512;
/** Past this a file is tar's (the archive is built in memory). */
const MAX_FILE = 1 << 20;
const MAX_TOTAL = 8 << 20;
const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFCHR = 0o020000, S_IFBLK = 0o060000, S_IFIFO = 0o010000, S_IFSOCK = 0o140000;

interface Entry {
  name: string;
  type: '0' | '2' | '3' | '4' | '5' | '6';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  link?: string;
  major?: number;
  minor?: number;
  data?: Buffer;
}

const utf8 = (b: Buffer): string | undefined => {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : undefined;
};

function octal(h: Buffer, at: number, len: number, v: number): boolean {
  const s = v.toString(8);
  if (v < 0 || !Number.isSafeInteger(v) || s.length > len - 1) return false;
  h.write(s.padStart(len - 1, '0'), at, 'latin1');
  h[at + len - 1] = 0;
  return true;
}

/** The name and prefix fields of `name`, or undefined where it fits no ustar header. */
function splitName(name: string): [string, string] | undefined {
  const b = Buffer.byteLength(name);
  if (b <= 100) return ['', name];
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const pre = name.slice(0, i), rest = name.slice(i + 1);
    if (Buffer.byteLength(pre) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) return [pre, rest];
  }
  return undefined;
}

function header(e: Entry): Buffer | undefined {
  const h = Buffer.alloc(BLOCK);
  const split = splitName(e.name);
  if (!split || (e.link !== undefined && Buffer.byteLength(e.link) > 100)) return undefined;
  h.write(split[1], 0, 'utf8');
  if (!octal(h, 100, 8, e.mode) || !octal(h, 108, 8, e.uid) || !octal(h, 116, 8, e.gid) || !octal(h, 124, 12, e.data?.length ?? 0) || !octal(h, 136, 12, e.mtime)) return undefined;
  h.write(e.type, 156, 'latin1');
  if (e.link !== undefined) h.write(e.link, 157, 'utf8');
  h.write('ustar\u000000', 257, 'latin1');
  if (e.type === '3' || e.type === '4') {
    if (!octal(h, 329, 8, e.major!) || !octal(h, 337, 8, e.minor!)) return undefined;
  }
  h.write(split[0], 345, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of h) sum += x;
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return h;
}

/**
 * The gzipped tar of the tree at `dir` (its root as `./`, as tar names it), or undefined where
 * the tree holds anything this does not write exactly (then tar is run as before).
 */
export function tarTree(dir: string): Buffer | undefined {
  // (stat: `dir` may be a /proc/PID/fd/N link to a detached mount's root.)
  const root = fs.statSync(dir);
  const entries: Entry[] = [];
  let total = 0;
  const meta = (st: fs.Stats) => ({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) });
  const walk = (at: string, rel: string): boolean => {
    for (const d of fs.readdirSync(at, { encoding: 'buffer' })) {
      const n = utf8(d);
      if (n === undefined) return false;
      const p = path.join(at, n), name = `${rel}${n}`, st = fs.lstatSync(p);
      const fmt = st.mode & S_IFMT;
      if (fmt === S_IFSOCK) continue; // (tar: "socket ignored")
      if (st.dev !== root.dev) return false;
      if (fmt === S_IFDIR) {
        entries.push({ name: `${name}/`, type: '5', ...meta(st) });
        if (!walk(p, `${name}/`)) return false;
      } else if (fmt === S_IFLNK) {
        const link = utf8(fs.readlinkSync(p, { encoding: 'buffer' }));
        if (link === undefined) return false;
        entries.push({ name, type: '2', ...meta(st), link });
      } else if (fmt === S_IFREG) {
        // (A second link is tar's --check-links and hard-link entries; a hole, its --sparse map.)
        if (st.nlink !== 1 || st.size > MAX_FILE || (st.size > 0 && st.blocks * 512 < st.size)) return false;
        const data = fs.readFileSync(p);
        if (data.length !== st.size) return false;
        total += data.length;
        if (total > MAX_TOTAL) return false;
        entries.push({ name, type: '0', ...meta(st), data });
      } else if (fmt === S_IFCHR || fmt === S_IFBLK) {
        const rdev = st.rdev;
        if (rdev >= 2 ** 32) return false; // (major past 4095 or minor past 2^20)
        const major = (rdev >>> 8) & 0xfff, minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
        entries.push({ name, type: fmt === S_IFCHR ? '3' : '4', ...meta(st), major, minor });
      } else if (fmt === S_IFIFO) {
        entries.push({ name, type: '6', ...meta(st) });
      } else {
        return false;
      }
    }
    return true;
  };
  entries.push({ name: './', type: '5', ...meta(root) });
  if ((root.mode & S_IFMT) !== S_IFDIR || !walk(dir, './')) return undefined;
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const h = header(e);
    if (!h) return undefined;
    blocks.push(h);
    if (e.data?.length) blocks.push(e.data, Buffer.alloc((BLOCK - (e.data.length % BLOCK)) % BLOCK));
  }
  blocks.push(Buffer.alloc(2 * BLOCK));
  return zlib.gzipSync(Buffer.concat(blocks));
}

const field = (h: Buffer, at: number, len: number): string => {
  const end = h.indexOf(0, at);
  return h.toString('utf8', at, end < 0 || end > at + len ? at + len : end);
};
const num = (h: Buffer, at: number, len: number): number | undefined => {
  const s = field(h, at, len).trim();
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : s === '' ? 0 : undefined;
};

/** The entries of a tar this writes (and tar writes of such trees), or undefined for anything else. */
function readEntries(tar: Buffer): Entry[] | undefined {
  const out: Entry[] = [];
  for (let at = 0; at + BLOCK <= tar.length;) {
    const h = tar.subarray(at, at + BLOCK);
    if (h.every((x) => x === 0)) return out;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (num(h, 148, 8) !== sum) return undefined;
    const magic = h.toString('latin1', 257, 263);
    if (magic !== 'ustar\u0000' && magic !== 'ustar ') return undefined;
    const type = String.fromCharCode(h[156]!) as Entry['type'] | '\u0000';
    const t = type === '\u0000' ? '0' : type;
    if (!['0', '2', '3', '4', '5', '6'].includes(t)) return undefined;
    const size = num(h, 124, 12), mode = num(h, 100, 8), uid = num(h, 108, 8), gid = num(h, 116, 8), mtime = num(h, 136, 12);
    if (size === undefined || mode === undefined || uid === undefined || gid === undefined || mtime === undefined) return undefined;
    const prefix = magic === 'ustar\u0000' ? field(h, 345, 155) : '';
    const name = prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
    const e: Entry = { name, type: t, mode, uid, gid, mtime };
    if (t === '2') e.link = field(h, 157, 100);
    if (t === '3' || t === '4') {
      const major = num(h, 329, 8), minor = num(h, 337, 8);
      if (major === undefined || minor === undefined || major > 0xfff || minor > 0xfffff) return undefined;
      e.major = major;
      e.minor = minor;
    }
    at += BLOCK;
    if (t === '0') {
      if (at + size > tar.length) return undefined;
      e.data = tar.subarray(at, at + size);
      at += Math.ceil(size / BLOCK) * BLOCK;
    } else if (size !== 0) return undefined;
    out.push(e);
  }
  return undefined; // no end blocks: cut short
}

/**
 * Puts the files of `archive` into the empty tree at `dir` (the tmpfs's root) as tar would,
 * and says whether it did: false, with nothing touched, where the archive holds anything
 * beyond the plain entries this writes, an entry's place is taken (but by a directory, for a
 * directory) or its parent is not a directory of the archive or of the tree; then tar runs.
 */
export function untarTree(archive: Buffer, dir: string): boolean {
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(archive);
  } catch {
    return false;
  }
  const entries = readEntries(tar);
  if (!entries) return false;
  const dirs = new Set<string>(['.']);
  const plan: { e: Entry; rel: string }[] = [];
  for (const e of entries) {
    const rel = path.posix.normalize(e.name.replace(/\/+$/, '') || '.');
    if (rel.startsWith('/') || rel === '..' || rel.startsWith('../') || (rel === '.' && e.type !== '5')) return false;
    const parent = path.posix.dirname(rel);
    let have: fs.Stats | undefined;
    try {
      have = fs.lstatSync(path.join(dir, rel));
    } catch {
      have = undefined;
    }
    if (rel !== '.' && !dirs.has(parent)) {
      let p: fs.Stats | undefined;
      try {
        p = fs.lstatSync(path.join(dir, parent));
      } catch {
        p = undefined;
      }
      if (!p?.isDirectory()) return false;
      dirs.add(parent);
    }
    if (have && !(e.type === '5' && have.isDirectory())) return false;
    if (e.type === '5') dirs.add(rel);
    plan.push({ e, rel });
  }
  // (An entry's access time is the extraction's, as tar leaves it: the archive has none.)
  const now = Date.now() / 1000;
  // Directories' modes and times once what is in them is made, deepest first, as tar sets them.
  const later: { p: string; e: Entry }[] = [];
  for (const { e, rel } of plan) {
    const p = path.join(dir, rel);
    switch (e.type) {
      case '5':
        if (rel !== '.' && !fs.existsSync(p)) fs.mkdirSync(p, { mode: 0o700 });
        fs.lchownSync(p, e.uid, e.gid);
        later.push({ p, e });
        break;
      case '0':
        fs.writeFileSync(p, e.data!, { mode: 0o600, flag: 'wx' });
        fs.lchownSync(p, e.uid, e.gid);
        fs.chmodSync(p, e.mode);
        fs.utimesSync(p, now, e.mtime);
        break;
      case '2':
        fs.symlinkSync(e.link!, p);
        fs.lchownSync(p, e.uid, e.gid);
        fs.lutimesSync(p, now, e.mtime);
        break;
      default: {
        const fmt = e.type === '3' ? S_IFCHR : e.type === '4' ? S_IFBLK : S_IFIFO;
        const dev = e.type === '6' ? 0 : ((e.minor! & 0xff) | ((e.major! & 0xfff) << 8) | ((e.minor! & ~0xff) << 12)) >>> 0;
        mknodAt(p, fmt | 0o600, dev);
        fs.lchownSync(p, e.uid, e.gid);
        fs.chmodSync(p, e.mode);
        fs.utimesSync(p, now, e.mtime);
      }
    }
  }
  for (const { p, e } of later.reverse()) {
    fs.chmodSync(p, e.mode);
    fs.utimesSync(p, now, e.mtime);
  }
  return true;
}
