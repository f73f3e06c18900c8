// The file of a Unix socket bound to a path, and binding again one whose file was removed.
//
// Dump: SIOCUNIXFILE opens the socket's own file by its inode, so its path in /proc tells
// whether it is still linked where bind() made it (unlinked, or unlinked and replaced by
// another file: CRIU's `deleted`), the directory a relative name was bound in (CRIU's
// name_dir), and its mode and owner.
// Restore (CRIU's bind_on_deleted): a removed one is bound at its path again, which alone
// gives it its name back, and the path is removed once it is set up: a file that holds the
// path meanwhile (the one that replaced it) is moved aside for that moment and back, and
// directories removed since are made for that moment and removed again. Sockets that connect
// to it afterwards reach it through an O_PATH fd of its file (/proc/self/fd/N).
import fs from 'node:fs';
import { dirname } from 'node:path';
import { closeFd, unixSocketFile, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';

const DELETED = ' (deleted)';
const O_PATH = 0o10000000;

/** What a path-bound socket's file says about its name. Changing it changes the image format. */
export interface BoundFile {
  /** The directory a relative name was bound in. */
  nameDir?: string;
  /** The file was unlinked from the path bind() made it at. */
  deleted: boolean;
  /** A mount covers the directory of the file (still at its path in its own mount). */
  hidden?: true;
  perms: { mode: number; uid: number; gid: number };
  /** The mount the file is on (its fdinfo's mnt_id). */
  mntId: number;
  /** Its device and inode, as `dev:ino`. */
  key: string;
}

/**
 * The file of socket `sock` (in stasis), bound to the path `name` (absolute, or relative to
 * where bind() ran); `root` is where stasis sees the tree's paths (its /proc/PID/root in a
 * mount namespace of its own, whose paths the file's link shows), or where it sees a mount's.
 */
export function boundFile(sock: number, name: string, what: () => string, rootOf: string | ((mntId: number) => string) = ''): BoundFile {
  let file = -1;
  try {
    file = unixSocketFile(sock);
  } catch (err) {
    const why = err instanceof SyscallError ? err.message : String(err);
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} is bound to ${name}, whose file SIOCUNIXFILE does not open (${why}), not supported`, { cause: err });
  }
  try {
    const st = fs.fstatSync(file);
    const mntId = mntIdOf(file), key = `${st.dev}:${st.ino}`;
    const root = typeof rootOf === 'string' ? rootOf : rootOf(mntId);
    const link = fs.readlinkSync(`/proc/self/fd/${file}`);
    // A name that really ends in " (deleted)" is still linked there.
    const linked = (p: string) => {
      const at = fs.lstatSync(`${root}${p}`, { throwIfNoEntry: false });
      return at?.ino === st.ino && at.dev === st.dev;
    };
    const deleted = link.endsWith(DELETED) && !linked(link);
    const path = deleted ? link.slice(0, -DELETED.length) : link;
    const perms = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    const moved = (at: string) => new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} is bound to ${name}, whose socket file is now at ${at}, not supported yet`);
    // A mount over the file's directory: restore binds a relative name from a clone of the
    // mount at the directory it was bound in, alone, where the file is if it is that mount's.
    if (!deleted && !linked(path)) {
      const dir = name.startsWith('/') || !path.endsWith(`/${name}`) ? undefined : path.slice(0, -name.length - 1) || '/';
      if (dir === undefined || mntIdOf(file) !== mntIdAt(`${root}${dir}`)) {
        throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what()} is bound to ${name}, whose socket file ${path} a mount now hides, not supported yet (only a relative name, on the mount of the directory it was bound from, is)`);
      }
      return { nameDir: dir, deleted, hidden: true, perms, mntId, key };
    }
    if (name.startsWith('/')) {
      if (path !== name) throw moved(path);
      return { deleted, perms, mntId, key };
    }
    if (!path.endsWith(`/${name}`)) throw moved(path);
    return { nameDir: path.slice(0, -name.length - 1) || '/', deleted, perms, mntId, key };
  } finally {
    closeFd(file);
  }
}

/** The mount id of open file `fd` of stasis (its fdinfo's mnt_id). */
function mntIdOf(fd: number): number {
  return Number(/^mnt_id:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? -1);
}

/** The mount id of the mount `path` leads to (-1 if it leads nowhere). */
function mntIdAt(path: string): number {
  let fd: number;
  try {
    fd = fs.openSync(path, O_PATH);
  } catch {
    return -1;
  }
  try {
    return mntIdOf(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Runs `bind` (which binds a socket at `path` and sets its file up) with the path free and
 * its directories there, then removes the path again, puts back what held it and removes the
 * directories it made. Returns an O_PATH fd of the socket's file.
 */
export function bindRemoved(path: string, bind: () => void): number {
  const dirs: string[] = [];
  for (let d = dirname(path); !fs.existsSync(d); d = dirname(d)) dirs.unshift(d);
  for (const d of dirs) fs.mkdirSync(d, { mode: 0o755 });
  let parked: string | undefined;
  try {
    if (fs.lstatSync(path, { throwIfNoEntry: false })) {
      parked = `${path}.stasis-sk-ghost-${process.pid}`;
      if (fs.lstatSync(parked, { throwIfNoEntry: false })) throw new StasisError('E_RESTORE_FAILED', `Cannot move ${path} aside to bind a removed socket there: ${parked} exists`);
      fs.renameSync(path, parked);
    }
    try {
      bind();
      return fs.openSync(path, O_PATH);
    } finally {
      fs.rmSync(path, { force: true });
      if (parked) fs.renameSync(parked, path);
    }
  } finally {
    for (const d of dirs.reverse()) fs.rmdirSync(d);
  }
}
