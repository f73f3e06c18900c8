// Paths of a filesystem through its mounts: a mount shows its filesystem's directory `root`
// at `mountpoint`, so a path the tree sees under the mountpoint is a path of the filesystem,
// and the other way round. Ghosts use them to reach a file of one mount through another.
import path from 'node:path';

/** What places a mount: the directory of its filesystem it shows, and where. */
export interface MountPlace {
  root: string;
  mountpoint: string;
}

const under = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(`${dir}/`);

/** The path in the filesystem of `p` (a path of the tree on mount `m`), or undefined where `p` is not under its mountpoint. */
export function fsPathOf(m: MountPlace, p: string): string | undefined {
  if (!under(p, m.mountpoint)) return undefined;
  return path.posix.join(m.root, m.mountpoint === '/' ? p : p.slice(m.mountpoint.length) || '/');
}

/** The path of the tree that shows `fsPath` through mount `m`, or undefined where `m`'s root is not above it. */
export function treePathOf(m: MountPlace, fsPath: string): string | undefined {
  if (!under(fsPath, m.root)) return undefined;
  return path.posix.join(m.mountpoint, m.root === '/' ? fsPath : fsPath.slice(m.root.length) || '/');
}
