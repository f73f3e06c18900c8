// /proc/PID/mountinfo (Documentation/filesystems/proc.rst, "mountinfo"):
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
// Zero or more optional fields end at a lone '-'. Paths and the source escape space, tab,
// newline and backslash as \ooo (seq_escape), so splitting on spaces is safe.
import { ProcFormatError } from './proc-format-error.js';
import { decimal, lines, unescapeOctal } from './scalars.js';

export interface MountInfo {
  mountId: number;
  parentId: number;
  /** st_dev of files on the mount, decimal in the file (unlike maps and locks). */
  dev: { major: number; minor: number };
  /** The directory of the filesystem that is the root of this mount (not '/' for a bind mount). */
  root: string;
  mountPoint: string;
  /** Per-mount options: rw, nosuid, relatime... */
  mountOptions: string[];
  /** Optional fields as printed: shared:N, master:N, propagate_from:N, unbindable. */
  optionalFields: string[];
  /** Peer group this mount shares propagation with. */
  shared?: number;
  /** Peer group this mount receives propagation from. */
  master?: number;
  /** The closest dominant peer group visible from this namespace, for a slave. */
  propagateFrom?: number;
  unbindable: boolean;
  /** Filesystem type, with a subtype when there is one: `fuse.sshfs`. */
  fsType: string;
  /** What was mounted (`/dev/vda`, `tmpfs`, `none`). */
  source: string;
  /** Per-superblock options, unescaped (values may hold commas, escaped as \054). */
  superOptions: string[];
}

const FILE = 'mountinfo';

export function parseMountinfo(text: string): MountInfo[] {
  return lines(text).map(parseLine);
}

function parseLine(line: string): MountInfo {
  const f = line.split(' ');
  const sep = f.indexOf('-', 6);
  if (f.length < 10 || sep < 0 || f.length !== sep + 4) {
    const layout = 'id parent major:minor root mountpoint options [optional...] - type source options';
    throw new ProcFormatError(FILE, `expected "${layout}"`, line);
  }
  const [id, parent, devText = '', root = '', mountPoint = '', options = ''] = f;
  const [major, minor] = devText.split(':');
  const info: MountInfo = {
    mountId: decimal(id, FILE, 'mount id', line),
    parentId: decimal(parent, FILE, 'parent id', line),
    dev: { major: decimal(major, FILE, 'device major', line), minor: decimal(minor, FILE, 'device minor', line) },
    root: unescapeOctal(root),
    mountPoint: unescapeOctal(mountPoint),
    mountOptions: options.split(','),
    optionalFields: f.slice(6, sep),
    unbindable: false,
    fsType: unescapeOctal(f[sep + 1] ?? ''),
    source: unescapeOctal(f[sep + 2] ?? ''),
    superOptions: (f[sep + 3] ?? '').split(',').map(unescapeOctal),
  };
  for (const opt of info.optionalFields) {
    const colon = opt.indexOf(':');
    const tag = colon < 0 ? opt : opt.slice(0, colon);
    const value = (): number => decimal(opt.slice(colon + 1), FILE, tag, line);
    if (tag === 'shared') info.shared = value();
    else if (tag === 'master') info.master = value();
    else if (tag === 'propagate_from') info.propagateFrom = value();
    else if (tag === 'unbindable') info.unbindable = true;
  }
  return info;
}
