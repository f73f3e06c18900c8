// CRIU's images do not say that a mount hides the file a Unix socket is bound to (stasis's own
// UnixSkEntry.hidden, which its dump sets): a restore that bound such a name from its path
// would put it on the covering mount (zdtm overmount_sock dumped by CRIU: the tmpfs over the
// socket's directory could not be unmounted after the restore, the socket holding it). It is
// told here from the mounts of the socket's namespace, as the dump tells it.
import path from 'node:path';
import { imageMountPoints } from '../files/fsnotify-handles.js';
import type { FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { StasisError } from '../errors.js';

/** Whether `p` is `dir` or below it. */
const under = (dir: string, p: string) => p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);

/** Marks `hidden` the path-bound sockets of `files` (a CRIU image set in `dir`) whose file a mount below their own covers. */
export function markHiddenSocketFiles(dir: string, files: Map<number, FileEntry>): void {
  const mounts = new Map([...imageMountPoints(dir)].map(([id, m]) => [id, { mp: m.mountPoint, ns: m.ns }]));
  if (!mounts.size) return;
  for (const f of files.values()) {
    const u = f.usk;
    if (!u || !u.name.length || u.name[0] === 0 || u.mntId < 0 || u.hidden) continue;
    const own = mounts.get(u.mntId);
    if (!own) continue;
    const name = Buffer.from(u.name).toString();
    const file = path.posix.resolve(u.nameDir || '/', name);
    const at = path.posix.dirname(file);
    const cover = [...mounts.values()].find((m) => m.ns === own.ns && m.mp !== own.mp && under(own.mp, m.mp) && under(m.mp, at));
    if (!cover) continue;
    // stasis binds a hidden name from a clone of the mount at its directory: a relative name, from name_dir.
    if (name.startsWith('/') || !u.nameDir || !under(own.mp, u.nameDir) || under(cover.mp, u.nameDir)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore Unix socket ${u.id} bound to ${file}: the mount at ${cover.mp} covers its file, which stasis binds again only by a name relative to a directory outside that mount`);
    }
    u.hidden = true;
  }
}
