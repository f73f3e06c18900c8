// /proc/PID/maps: one VMA a line, `start-end perms offset major:minor inode   path`
// (fs/proc/task_mmu.c, show_vma_header_prefix). Addresses are hex u64 and exceed 2^53 on
// x86_64 ([vsyscall] sits at 0xffffffffff600000), so they are BigInts.
import { ProcFormatError } from './proc-format-error.js';
import { decimalBig, hex, hexBig, lines } from './scalars.js';

export interface MapPerms {
  read: boolean;
  write: boolean;
  exec: boolean;
  /** 's': VM_MAYSHARE, a MAP_SHARED mapping (even one that can no longer be written). */
  shared: boolean;
}

export interface MapEntry {
  start: bigint;
  end: bigint;
  perms: MapPerms;
  /** Offset into the file in bytes; 0 for anonymous memory. */
  offset: bigint;
  /** Device of the mapped file, hex in the file; 0:0 for anonymous memory. */
  dev: { major: number; minor: number };
  /** BigInt: overlayfs with xino puts a filesystem id in the high bits. */
  inode: bigint;
  /**
   * The file path, or a pseudo name (`[heap]`, `[stack]`, `[vdso]`, `[vvar]`,
   * `[vvar_vclock]`, `[vsyscall]`, `[anon:name]`, `[anon_shmem:name]`), or '' for unnamed
   * anonymous memory. Shared anonymous memory shows as `/dev/zero`, memfds as `/memfd:name`,
   * SysV shm as `/SYSV0000002a`, all deleted. The kernel escapes only '\n' (as `\012`) and
   * leaves backslashes alone, so the path is kept as printed: CRIU resolves the file
   * through /proc/PID/map_files, never through this text.
   */
  path: string;
  /**
   * The file was unlinked: the kernel appended ` (deleted)`, stripped from `path`. A file
   * really named `x (deleted)` looks the same; only map_files and stat tell them apart.
   */
  deleted: boolean;
}

const DELETED = ' (deleted)';

/** Parses one line of maps (also the header line of each VMA in smaps). */
export function parseMapsLine(line: string, file = 'maps'): MapEntry {
  // Five space-separated fields, then padding to a column, then the path (spaces allowed).
  const f: string[] = [];
  let pos = 0;
  for (let i = 0; i < 5; i++) {
    const sp = line.indexOf(' ', pos);
    const end = sp < 0 ? line.length : sp;
    f.push(line.slice(pos, end));
    pos = end + 1;
  }
  const [range = '', permText = '', offset, devText = '', inode] = f;
  const dash = range.indexOf('-');
  const colon = devText.indexOf(':');
  if (dash < 0 || colon < 0 || permText.length !== 4 || inode === undefined || inode === '') {
    throw new ProcFormatError(file, 'expected "start-end perms offset dev inode" before the path', line);
  }
  let path = pos < line.length ? line.slice(pos).replace(/^ +/, '') : '';
  const deleted = path.endsWith(DELETED);
  if (deleted) path = path.slice(0, -DELETED.length);
  return {
    start: hexBig(range.slice(0, dash), file, 'start address', line),
    end: hexBig(range.slice(dash + 1), file, 'end address', line),
    perms: parsePerms(permText, file, line),
    offset: hexBig(offset, file, 'offset', line),
    dev: {
      major: hex(devText.slice(0, colon), file, 'device major', line),
      minor: hex(devText.slice(colon + 1), file, 'device minor', line),
    },
    inode: decimalBig(inode, file, 'inode', line),
    path,
    deleted,
  };
}

function parsePerms(p: string, file: string, line: string): MapPerms {
  const flag = (i: number, set: string): boolean => {
    const c = p[i];
    if (c === set) return true;
    if (c === '-') return false;
    throw new ProcFormatError(file, `permissions are "${p}", not like "rwxp"`, line);
  };
  const last = p[3];
  if (last !== 's' && last !== 'p') throw new ProcFormatError(file, `permissions are "${p}", not like "rwxp"`, line);
  return { read: flag(0, 'r'), write: flag(1, 'w'), exec: flag(2, 'x'), shared: last === 's' };
}

/** Parses the whole of /proc/PID/maps; an empty file (a zombie, a kernel thread) gives []. */
export function parseMaps(text: string): MapEntry[] {
  return lines(text).map((line) => parseMapsLine(line));
}
