// A task's working and root directories, as CRIU keeps them: a regular file entry each
// (fs-PID.img names them). One that was removed (cwd01: the task sits in a directory that
// was rmdir'd) is a ghost directory: made again for the restore, entered, and removed; one
// under /proc/PID of a process gone since (unhashed_proc) is remapped to the dead pid.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { StasisError } from '../errors.js';
import { mountIdOf } from '../sys/index.js';
import type { FileIds } from './file-ids.js';
import type { GhostDumper } from './ghost.js';
import { deadProcPid, emptyFown } from './reg.js';

const O_RDONLY = 0, O_DIRECTORY = 0o200000;
const DELETED = ' (deleted)';

export function dumpTaskDir(pid: number, which: 'cwd' | 'root', ids: FileIds, ghosts: GhostDumper | undefined): FileEntry {
  const proc = `/proc/${pid}/${which}`;
  const link = fs.readlinkSync(proc);
  const stat = fs.statSync(proc, { bigint: true });
  const what = which === 'cwd' ? 'working directory' : 'root directory';
  const id = ids.fresh();
  let path = link;
  // In a mount namespace of the tree's own, its paths are looked at through its root.
  const root = ghosts?.mntRoot ?? '';
  const dead = deadProcPid(link, stat.dev, root);
  if (dead) {
    if (!ghosts) throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}: its ${what} ${link} is of a process that is gone`);
    path = dead.path;
    ghosts.addDeadPid(id, dead.pid);
  } else if (link.endsWith(DELETED) && !sameInode(`${root}${link}`, stat)) {
    path = link.slice(0, -DELETED.length);
    if (!ghosts) throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}: its ${what} ${path} was deleted`);
    ghosts.add({ pid, what: `the ${what}`, proc, stat, mntId: -1 }, id, path);
  }
  // In a mount namespace of the tree's own, its mount too: it says which of the tree's namespaces the path is of (mnt-nested.ts).
  const mntId = ghosts?.mntRoot ? mountIdOf(proc) : undefined;
  return create(FileEntrySchema, {
    type: FdTypes.REG, id,
    reg: { id, flags: O_RDONLY | O_DIRECTORY, pos: 0n, fown: emptyFown(), name: path, mode: Number(stat.mode), ...(mntId !== undefined ? { mntId } : {}) },
  });
}

function sameInode(path: string, st: fs.BigIntStats): boolean {
  try {
    const now = fs.statSync(path, { bigint: true });
    return now.dev === st.dev && now.ino === st.ino;
  } catch {
    return false;
  }
}
