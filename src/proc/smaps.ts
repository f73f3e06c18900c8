// /proc/PID/smaps: each VMA's maps line, then `Key:   N kB` lines, then `VmFlags: rd wr ...`
// (Documentation/filesystems/proc.rst, "smaps"). The VmFlags mnemonics carry what maps
// cannot: MAP_GROWSDOWN, MAP_LOCKED, MAP_NORESERVE and the madvise() state CRIU restores.
import { parseMapsLine, type MapEntry } from './maps.js';
import { ProcFormatError } from './proc-format-error.js';
import { decimal, lines } from './scalars.js';

export interface SmapsEntry extends MapEntry {
  /** Every `Key: N kB` line, in bytes, under the kernel's key (`Rss`, `Pss_Dirty`, `KSM`...). */
  sizes: Map<string, number>;
  size: number;
  rss: number;
  pss: number;
  sharedClean: number;
  sharedDirty: number;
  privateClean: number;
  privateDirty: number;
  referenced: number;
  anonymous: number;
  anonHugePages: number;
  swap: number;
  locked: number;
  /** THPeligible: the VMA may be backed by transparent huge pages. */
  thpEligible?: boolean;
  /** ProtectionKey, on CPUs with memory protection keys. */
  protectionKey?: number;
  /** The VmFlags mnemonics: rd wr ex sh mr mw me ms gd pf lo io sr rr dc de ac nr ht ar dd sd mm hg nh mg um uw ui ss sl dp wf... */
  vmFlags: Set<string>;
  /** Other lines that are not sizes, as printed. */
  extra: Map<string, string>;
}

const HEADER = /^[0-9a-f]+-[0-9a-f]+ /;

interface Pending {
  map: MapEntry;
  header: string;
  sizes: Map<string, number>;
  extra: Map<string, string>;
  vmFlags: Set<string>;
}

/** Parses the whole of /proc/PID/smaps; an empty file gives []. */
export function parseSmaps(text: string): SmapsEntry[] {
  const out: SmapsEntry[] = [];
  let cur: Pending | null = null;
  for (const line of lines(text)) {
    if (HEADER.test(line)) {
      if (cur) out.push(finish(cur));
      cur = { map: parseMapsLine(line, 'smaps'), header: line, sizes: new Map(), extra: new Map(), vmFlags: new Set() };
      continue;
    }
    const colon = line.indexOf(':');
    if (cur === null || colon < 0) throw new ProcFormatError('smaps', 'expected a VMA line or "Key: value"', line);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === 'VmFlags') {
      for (const f of value.split(' ')) if (f !== '') cur.vmFlags.add(f);
    } else if (value.endsWith(' kB')) {
      cur.sizes.set(key, decimal(value.slice(0, -3).trimEnd(), 'smaps', key, line) * 1024);
    } else {
      cur.extra.set(key, value);
    }
  }
  if (cur) out.push(finish(cur));
  return out;
}

// Every key below is printed for every VMA by all kernels since 4.3.
function finish(p: Pending): SmapsEntry {
  const size = (key: string): number => {
    const v = p.sizes.get(key);
    if (v === undefined) throw new ProcFormatError('smaps', `the VMA has no ${key} line`, p.header);
    return v;
  };
  const entry: SmapsEntry = {
    ...p.map,
    sizes: p.sizes,
    size: size('Size'),
    rss: size('Rss'),
    pss: size('Pss'),
    sharedClean: size('Shared_Clean'),
    sharedDirty: size('Shared_Dirty'),
    privateClean: size('Private_Clean'),
    privateDirty: size('Private_Dirty'),
    referenced: size('Referenced'),
    anonymous: size('Anonymous'),
    anonHugePages: size('AnonHugePages'),
    swap: size('Swap'),
    locked: size('Locked'),
    vmFlags: p.vmFlags,
    extra: p.extra,
  };
  const thp = p.extra.get('THPeligible');
  if (thp !== undefined) entry.thpEligible = decimal(thp, 'smaps', 'THPeligible', p.header) !== 0;
  const pkey = p.extra.get('ProtectionKey');
  if (pkey !== undefined) entry.protectionKey = decimal(pkey, 'smaps', 'ProtectionKey', p.header);
  return entry;
}

/**
 * What CRIU keeps of a VMA's flags (VmaEntry.flags MAP_* bits and the madv bitmap,
 * criu/proc_parse.c parse_vma_vmflags), as names rather than bits.
 */
export interface VmaFlags {
  /** perms 's' (VM_MAYSHARE): MAP_SHARED, else MAP_PRIVATE. */
  shared: boolean;
  /** gd: MAP_GROWSDOWN. */
  growsDown: boolean;
  /** lo: MAP_LOCKED (mlock() sets it too). */
  locked: boolean;
  /** nr: MAP_NORESERVE. */
  noReserve: boolean;
  /** ht: MAP_HUGETLB. */
  hugetlb: boolean;
  /** sr: MADV_SEQUENTIAL. */
  sequential: boolean;
  /** rr: MADV_RANDOM. */
  random: boolean;
  /** dc: MADV_DONTFORK. */
  dontFork: boolean;
  /** dd: MADV_DONTDUMP. */
  dontDump: boolean;
  /** mg: MADV_MERGEABLE (KSM). */
  mergeable: boolean;
  /** hg: MADV_HUGEPAGE. */
  hugepage: boolean;
  /** nh: MADV_NOHUGEPAGE. */
  noHugepage: boolean;
  /** wf: MADV_WIPEONFORK. */
  wipeOnFork: boolean;
  /** io: VM_IO, device memory: CRIU marks the VMA unsupported (except [vvar]). */
  io: boolean;
  /** pf: VM_PFNMAP, raw page frames: unsupported likewise. */
  pfnMap: boolean;
  /** sd: VM_SOFTDIRTY. Absent everywhere when the kernel lacks CONFIG_MEM_SOFT_DIRTY. */
  softDirty: boolean;
  /** um, uw, ui: registered with a userfaultfd (missing, write-protect, minor). */
  userfaultfd: boolean;
  /** sl: sealed with mseal(); it cannot be unmapped, moved or reprotected. */
  sealed: boolean;
  /** ss: an x86 shadow stack. */
  shadowStack: boolean;
  /** dp: droppable (MAP_DROPPABLE), the kernel may zero it under memory pressure. */
  droppable: boolean;
}

export function vmaFlags(entry: Pick<SmapsEntry, 'perms' | 'vmFlags'>): VmaFlags {
  const has = (m: string): boolean => entry.vmFlags.has(m);
  return {
    shared: entry.perms.shared,
    growsDown: has('gd'),
    locked: has('lo'),
    noReserve: has('nr'),
    hugetlb: has('ht'),
    sequential: has('sr'),
    random: has('rr'),
    dontFork: has('dc'),
    dontDump: has('dd'),
    mergeable: has('mg'),
    hugepage: has('hg'),
    noHugepage: has('nh'),
    wipeOnFork: has('wf'),
    io: has('io'),
    pfnMap: has('pf'),
    softDirty: has('sd'),
    userfaultfd: has('um') || has('uw') || has('ui'),
    sealed: has('sl'),
    shadowStack: has('ss'),
    droppable: has('dp'),
  };
}
