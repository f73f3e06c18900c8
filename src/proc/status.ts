// /proc/PID/status (and task/TID/status): `Key:\tvalue` lines (fs/proc/array.c). The
// signal and capability masks are full 64-bit hex here, unlike the decimals in stat.
import { ProcFormatError } from './proc-format-error.js';
import { decimal, hexBig, lines, octal } from './scalars.js';

/** Real, effective, saved and filesystem ids, in the order status prints them. */
export interface IdSet {
  real: number;
  effective: number;
  saved: number;
  fs: number;
}

/** Memory counters, in bytes; status has none for kernel threads and zombies. */
export interface VmSizes {
  vmPeak: number;
  vmSize: number;
  vmLck: number;
  vmPin: number;
  vmHwm: number;
  vmRss: number;
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  vmData: number;
  vmStk: number;
  vmExe: number;
  vmLib: number;
  vmPte: number;
  vmSwap: number;
  hugetlbPages?: number;
}

export interface ProcStatus {
  /** comm, with the kernel's `\n` and `\\` escapes undone. */
  name: string;
  /** Absent when the task has no fs_struct (exiting). */
  umask?: number;
  /** The state letter: R, S, D, T, t, Z, X, I... */
  state: string;
  /** The word after it: running, sleeping, "tracing stop"... */
  stateName: string;
  tgid: number;
  /** NUMA group leader, with NUMA balancing only. */
  ngid?: number;
  pid: number;
  ppid: number;
  tracerPid: number;
  uid: IdSet;
  gid: IdSet;
  fdSize: number;
  groups: number[];
  /** Ids in each nested pid namespace, outermost (ours) first. */
  nsTgid?: number[];
  nsPid?: number[];
  nsPgid?: number[];
  nsSid?: number[];
  kthread?: boolean;
  vm: VmSizes | null;
  coreDumping?: boolean;
  thpEnabled?: boolean;
  untagMask?: bigint;
  threads: number;
  sigQ: { queued: number; limit: number };
  sigPnd: bigint;
  shdPnd: bigint;
  sigBlk: bigint;
  sigIgn: bigint;
  sigCgt: bigint;
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb?: bigint;
  noNewPrivs?: boolean;
  /** 0 disabled, 1 strict, 2 filter. */
  seccomp?: number;
  seccompFilters?: number;
  speculationStoreBypass?: string;
  speculationIndirectBranch?: string;
  /** x86 shadow stack features enabled for the thread (`shstk wrss`), and those locked. */
  x86ThreadFeatures?: string[];
  x86ThreadFeaturesLocked?: string[];
  /** Every line as printed, for what has no field above (Cpus_allowed_list, ctxt switches...). */
  raw: Map<string, string>;
}

const FILE = 'status';
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', f: '\f', v: '\v' };

export function parseStatus(text: string): ProcStatus {
  const raw = new Map<string, string>();
  for (const line of lines(text)) {
    const colon = line.indexOf(':');
    if (colon < 0) throw new ProcFormatError(FILE, 'expected "Key:\\tvalue"', line);
    // Drop only the tab after the colon: a comm may begin with a space.
    const value = line.slice(colon + 1);
    raw.set(line.slice(0, colon), value.startsWith('\t') ? value.slice(1) : value.trimStart());
  }
  const need = (key: string): string => {
    const v = raw.get(key);
    if (v === undefined) throw new ProcFormatError(FILE, `the ${key} line is missing`);
    return v;
  };
  const int = (key: string): number => decimal(need(key), FILE, key);
  const mask = (key: string): bigint => hexBig(need(key), FILE, key);
  const list = (key: string): number[] => words(need(key)).map((w) => decimal(w, FILE, key));
  const ids = (key: string): IdSet => {
    const [real, effective, saved, fs] = list(key);
    if (fs === undefined || real === undefined || effective === undefined || saved === undefined) {
      throw new ProcFormatError(FILE, `${key} has fewer than 4 ids`);
    }
    return { real, effective, saved, fs };
  };

  const stateText = need('State');
  const sigQ = need('SigQ').split('/');
  const out: ProcStatus = {
    name: need('Name').replace(/\\(.)/g, (_, c: string) => ESCAPES[c] ?? c),
    state: stateText.slice(0, 1),
    stateName: stateText.replace(/^. \((.*)\)$/, '$1'),
    tgid: int('Tgid'),
    pid: int('Pid'),
    ppid: int('PPid'),
    tracerPid: int('TracerPid'),
    uid: ids('Uid'),
    gid: ids('Gid'),
    fdSize: int('FDSize'),
    groups: list('Groups'),
    vm: raw.has('VmSize') ? vmSizes(raw) : null,
    threads: int('Threads'),
    sigQ: { queued: decimal(sigQ[0], FILE, 'SigQ'), limit: decimal(sigQ[1], FILE, 'SigQ') },
    sigPnd: mask('SigPnd'),
    shdPnd: mask('ShdPnd'),
    sigBlk: mask('SigBlk'),
    sigIgn: mask('SigIgn'),
    sigCgt: mask('SigCgt'),
    capInh: mask('CapInh'),
    capPrm: mask('CapPrm'),
    capEff: mask('CapEff'),
    capBnd: mask('CapBnd'),
    raw,
  };
  if (raw.has('Umask')) out.umask = octal(need('Umask'), FILE, 'Umask');
  if (raw.has('Ngid')) out.ngid = int('Ngid');
  if (raw.has('NStgid')) out.nsTgid = list('NStgid');
  if (raw.has('NSpid')) out.nsPid = list('NSpid');
  if (raw.has('NSpgid')) out.nsPgid = list('NSpgid');
  if (raw.has('NSsid')) out.nsSid = list('NSsid');
  if (raw.has('Kthread')) out.kthread = int('Kthread') !== 0;
  if (raw.has('CoreDumping')) out.coreDumping = int('CoreDumping') !== 0;
  if (raw.has('THP_enabled')) out.thpEnabled = int('THP_enabled') !== 0;
  if (raw.has('untag_mask')) out.untagMask = hexBig(need('untag_mask').replace(/^0x/, ''), FILE, 'untag_mask');
  if (raw.has('CapAmb')) out.capAmb = mask('CapAmb');
  if (raw.has('NoNewPrivs')) out.noNewPrivs = int('NoNewPrivs') !== 0;
  if (raw.has('Seccomp')) out.seccomp = int('Seccomp');
  if (raw.has('Seccomp_filters')) out.seccompFilters = int('Seccomp_filters');
  if (raw.has('Speculation_Store_Bypass')) out.speculationStoreBypass = need('Speculation_Store_Bypass');
  if (raw.has('SpeculationIndirectBranch')) out.speculationIndirectBranch = need('SpeculationIndirectBranch');
  if (raw.has('x86_Thread_features')) out.x86ThreadFeatures = words(need('x86_Thread_features'));
  if (raw.has('x86_Thread_features_locked')) out.x86ThreadFeaturesLocked = words(need('x86_Thread_features_locked'));
  return out;
}

function words(text: string): string[] {
  return text.split(/[\t ]+/).filter((w) => w !== '');
}

function vmSizes(raw: Map<string, string>): VmSizes {
  const kb = (key: string): number => {
    const v = raw.get(key);
    if (v !== undefined && !v.endsWith(' kB')) throw new ProcFormatError(FILE, `${key} is "${v}", not "N kB"`);
    return decimal(v?.slice(0, -3).trim(), FILE, key) * 1024;
  };
  const vm: VmSizes = {
    vmPeak: kb('VmPeak'),
    vmSize: kb('VmSize'),
    vmLck: kb('VmLck'),
    vmPin: kb('VmPin'),
    vmHwm: kb('VmHWM'),
    vmRss: kb('VmRSS'),
    rssAnon: kb('RssAnon'),
    rssFile: kb('RssFile'),
    rssShmem: kb('RssShmem'),
    vmData: kb('VmData'),
    vmStk: kb('VmStk'),
    vmExe: kb('VmExe'),
    vmLib: kb('VmLib'),
    vmPte: kb('VmPTE'),
    vmSwap: kb('VmSwap'),
  };
  if (raw.has('HugetlbPages')) vm.hugetlbPages = kb('HugetlbPages');
  return vm;
}
