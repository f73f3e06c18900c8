// CRIU's --freeze-cgroup (runc's freeze_cgroup): the tree is frozen with ptrace as always,
// and the cgroup named must then hold the frozen tree's processes and no other. CRIU freezes
// the cgroup itself; for the images the result is the same tree, stopped. A process of the
// cgroup outside the tree (a `runc exec` whose parent is outside) would be left behind, so it
// refuses the dump.
import fs from 'node:fs';
import path from 'node:path';
import { StasisError } from '../errors.js';

/** Refuses the dump unless cgroup directory `dir` holds exactly the processes `pids` (stasis's pids). */
export function checkFreezeCgroup(dir: string, pids: readonly number[]): void {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8');
  } catch (err) {
    throw new StasisError('E_UNSUPPORTED', `Cannot freeze through cgroup ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const tree = new Set(pids);
  const outside = text.split('\n').filter(Boolean).map(Number).filter((p) => !tree.has(p));
  if (outside.length) throw new StasisError('E_UNSUPPORTED', `Cannot dump through freeze cgroup ${dir}: it holds pid(s) ${outside.join(', ')}, which are not in the tree, and would be left out of the images`);
}
