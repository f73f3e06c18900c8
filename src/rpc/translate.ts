// A CriuReq's options as the command line's: each field of CriuOpts becomes the CRIU option it
// stands for (as CRIU's own service does), so that the command line's option table says what
// stasis supports and the command line's builder says what each option means. Fields without
// an option of their own (the client's fds, notify_scripts) are resolved here. A field that is
// set and not supported is refused by name, never ignored.
import fs from 'node:fs';
import { isFieldSet } from '@bufbuild/protobuf';
import { CriuOptsSchema, CriuCgMode, CriuNetworkLockMethod, CriuPreDumpMode, type CriuOpts } from '../image/gen/stasis/rpc_pb.js';
import { StasisError } from '../errors.js';
import { optionByLong, unsupportedFor, type Verb } from '../cli/options.js';
import type { ParsedArgs } from '../cli/args.js';

type Value = string | boolean | number | string[];

/** Where the client's fd numbers lead: /proc/PEER/fd/N, as a path this process can use. */
export interface PeerFds {
  dirOf(fd: number, what: string): string;
}

interface Field {
  /** The CRIU option the field stands for, and its value in the option map. */
  option?: string;
  value?: (o: CriuOpts, fds: PeerFds) => Value | undefined;
  /** Handled by the RPC layer itself (no option). */
  rpc?: true;
}

const CLONE_NEWNET = 0x40000000;
const CG_MODES: Record<number, string> = {
  [CriuCgMode.IGNORE]: 'ignore', [CriuCgMode.CG_NONE]: 'none', [CriuCgMode.PROPS]: 'props', [CriuCgMode.SOFT]: 'soft',
  [CriuCgMode.FULL]: 'full', [CriuCgMode.STRICT]: 'strict', [CriuCgMode.DEFAULT]: 'default',
};
const LOCK_METHODS: Record<number, string> = {
  [CriuNetworkLockMethod.IPTABLES]: 'iptables', [CriuNetworkLockMethod.NFTABLES]: 'nftables', [CriuNetworkLockMethod.SKIP]: 'skip',
};

/** CriuOpts field (by its proto name) -> the CRIU option. */
export const FIELDS: Record<string, Field> = {
  images_dir_fd: { option: 'images-dir', value: (o, fds) => fds.dirOf(o.imagesDirFd, 'images_dir_fd') },
  images_dir: { option: 'images-dir', value: (o) => o.imagesDir },
  work_dir_fd: { option: 'work-dir', value: (o, fds) => fds.dirOf(o.workDirFd, 'work_dir_fd') },
  pid: { option: 'tree', value: (o) => String(o.pid) },
  leave_running: { option: 'leave-running', value: (o) => o.leaveRunning },
  ext_unix_sk: { option: 'ext-unix-sk', value: (o) => o.extUnixSk },
  tcp_established: { option: 'tcp-established', value: (o) => o.tcpEstablished },
  evasive_devices: { option: 'evasive-devices', value: (o) => o.evasiveDevices },
  shell_job: { option: 'shell-job', value: (o) => o.shellJob },
  file_locks: { option: 'file-locks', value: (o) => o.fileLocks },
  log_level: { option: 'verbosity', value: (o) => o.logLevel },
  log_file: { option: 'log-file', value: (o) => o.logFile },
  ps: { option: 'page-server', value: () => true },
  notify_scripts: { rpc: true },
  root: { option: 'root', value: (o) => o.root },
  parent_img: { option: 'prev-images-dir', value: (o) => o.parentImg },
  track_mem: { option: 'track-mem', value: (o) => o.trackMem },
  auto_dedup: { option: 'auto-dedup', value: (o) => o.autoDedup },
  link_remap: { option: 'link-remap', value: (o) => o.linkRemap },
  veths: { option: 'external', value: (o) => o.veths.map((v) => `veth[${v.ifIn}]:${v.ifOut}`) },
  cpu_cap: { option: 'cpu-cap', value: (o) => String(o.cpuCap) },
  force_irmap: { option: 'force-irmap', value: (o) => o.forceIrmap },
  exec_cmd: { option: 'exec-cmd', value: (o) => o.execCmd.length > 0 },
  ext_mnt: { option: 'ext-mount-map', value: (o) => o.extMnt.map((m) => `${m.key}:${m.val}`) },
  // CRIU: true is soft, false ignore; a manage_cgroups_mode (a later field) overrides it.
  manage_cgroups: { option: 'manage-cgroups', value: (o) => (o.manageCgroups ? true : 'ignore') },
  manage_cgroups_mode: { option: 'manage-cgroups', value: (o) => CG_MODES[o.manageCgroupsMode] ?? String(o.manageCgroupsMode) },
  cg_root: { option: 'cgroup-root', value: (o) => o.cgRoot.map((c) => (c.ctrl ? `${c.ctrl}:${c.path}` : c.path)) },
  rst_sibling: { option: 'restore-sibling', value: (o) => o.rstSibling },
  inherit_fd: { option: 'inherit-fd', value: (o) => o.inheritFd.map((f) => `fd[${f.fd}]:${f.key}`) },
  auto_ext_mnt: { option: 'ext-mount-map', value: (o) => (o.autoExtMnt ? ['auto'] : undefined) },
  ext_sharing: { option: 'enable-external-sharing', value: (o) => o.extSharing },
  ext_masters: { option: 'enable-external-masters', value: (o) => o.extMasters },
  skip_mnt: { option: 'skip-mnt', value: (o) => o.skipMnt },
  enable_fs: { option: 'enable-fs', value: (o) => o.enableFs.join(',') },
  unix_sk_ino: { option: 'external', value: (o) => o.unixSkIno.map((u) => `unix[${u.inode}]`) },
  ghost_limit: { option: 'ghost-limit', value: (o) => String(o.ghostLimit) },
  irmap_scan_paths: { option: 'irmap-scan-path', value: (o) => o.irmapScanPaths },
  external: { option: 'external', value: (o) => o.external },
  empty_ns: { option: 'empty-ns', value: (o) => emptyNs(o.emptyNs) },
  join_ns: { option: 'join-ns', value: (o) => o.joinNs.map((j) => `${j.ns}:${j.nsFile}${j.extraOpt ? `,${j.extraOpt}` : ''}`) },
  cgroup_props: { option: 'cgroup-props', value: (o) => o.cgroupProps },
  cgroup_props_file: { option: 'cgroup-props-file', value: (o) => o.cgroupPropsFile },
  cgroup_dump_controller: { option: 'cgroup-dump-controller', value: (o) => o.cgroupDumpController },
  freeze_cgroup: { option: 'freeze-cgroup', value: (o) => o.freezeCgroup },
  timeout: { option: 'timeout', value: (o) => String(o.timeout) },
  tcp_skip_in_flight: { option: 'skip-in-flight', value: (o) => o.tcpSkipInFlight },
  weak_sysctls: { option: 'weak-sysctls', value: (o) => o.weakSysctls },
  lazy_pages: { option: 'lazy-pages', value: (o) => o.lazyPages },
  status_fd: { option: 'status-fd', value: (o) => String(o.statusFd) },
  orphan_pts_master: { option: 'orphan-pts-master', value: (o) => o.orphanPtsMaster },
  // runc names /etc/criu/runc.conf whether or not it exists; CRIU reads it only if it does.
  config_file: { option: 'config', value: (o) => (fs.existsSync(o.configFile) ? o.configFile : undefined) },
  tcp_close: { option: 'tcp-close', value: (o) => o.tcpClose },
  lsm_profile: { option: 'lsm-profile', value: (o) => o.lsmProfile },
  tls_cacert: { option: 'tls', value: () => true },
  tls_cacrl: { option: 'tls', value: () => true },
  tls_cert: { option: 'tls', value: () => true },
  tls_key: { option: 'tls', value: () => true },
  tls: { option: 'tls', value: (o) => o.tls },
  tls_no_cn_verify: { option: 'tls', value: (o) => o.tlsNoCnVerify },
  cgroup_yard: { option: 'cgroup-yard', value: (o) => o.cgroupYard },
  pre_dump_mode: { option: 'pre-dump-mode', value: (o) => (o.preDumpMode === CriuPreDumpMode.VM_READ ? 'read' : 'splice') },
  pidfd_store_sk: { option: 'pidfd-store', value: (o) => String(o.pidfdStoreSk) },
  lsm_mount_context: { option: 'lsm-mount-context', value: (o) => o.lsmMountContext },
  network_lock: { option: 'network-lock', value: (o) => LOCK_METHODS[o.networkLock] ?? String(o.networkLock) },
  mntns_compat_mode: { option: 'mntns-compat-mode', value: (o) => o.mntnsCompatMode },
  skip_file_rwx_check: { option: 'skip-file-rwx-check', value: (o) => o.skipFileRwxCheck },
  unprivileged: { option: 'unprivileged', value: (o) => o.unprivileged },
  leave_stopped: { option: 'leave-stopped', value: (o) => o.leaveStopped },
  display_stats: { option: 'display-stats', value: (o) => o.displayStats },
  log_to_stderr: { option: 'log-file', value: (o) => (o.logToStderr ? '-' : undefined) },
};
function emptyNs(mask: number): string | undefined {
  if (mask === 0) return undefined;
  if (mask !== CLONE_NEWNET) {
    throw new StasisError('E_UNSUPPORTED', `RPC option empty_ns 0x${mask.toString(16)} is not supported: only the network namespace (CLONE_NEWNET) can be restored empty`);
  }
  return 'net';
}

/**
 * The options of a request of kind `verb`, in the command line's form. Options that do not
 * apply to the verb are dropped (CRIU's options are global: runc sends root with a dump);
 * a supported-nowhere option that is set is refused.
 */
export function argsFromOpts(verb: Verb, o: CriuOpts, fds: PeerFds): ParsedArgs {
  const opts: ParsedArgs['opts'] = new Map();
  for (const f of CriuOptsSchema.fields) {
    if (!isFieldSet(o, f)) continue;
    const spec = FIELDS[f.name];
    if (!spec) throw new StasisError('E_UNSUPPORTED', `RPC option ${f.name} is not supported by stasis`);
    if (spec.rpc || !spec.option) continue;
    const opt = optionByLong(spec.option);
    if (!opt) throw new StasisError('E_UNSUPPORTED', `RPC option ${f.name} is not supported by stasis`);
    if (!opt.verbs.includes(verb)) continue;
    const v = spec.value!(o, fds);
    if (v === undefined || v === false || (Array.isArray(v) && v.length === 0)) continue;
    const why = unsupportedFor(opt, verb);
    if (why) throw new StasisError('E_UNSUPPORTED', `RPC option ${f.name} (--${opt.long}) is not supported: ${why}`);
    const prev = opts.get(opt.long);
    opts.set(opt.long, Array.isArray(prev) && Array.isArray(v) ? [...prev, ...v] : v);
  }
  const unknown = o.$unknown?.map((u) => u.no) ?? [];
  if (unknown.length) throw new StasisError('E_UNSUPPORTED', `RPC option field ${unknown.join(', ')} is not known to stasis`);
  return { verb, opts, rest: [] };
}

/**
 * Only the options that place the log (log_file, log_level, work_dir_fd, images_dir_fd): a
 * request refused by argsFromOpts is still logged where the client looks for it (runc
 * prints only the log's path).
 */
export function logArgsFromOpts(verb: Verb, o: CriuOpts, fds: PeerFds): ParsedArgs {
  const opts: ParsedArgs['opts'] = new Map();
  for (const f of CriuOptsSchema.fields) {
    if (!['log_file', 'log_level', 'work_dir_fd', 'images_dir_fd'].includes(f.name) || !isFieldSet(o, f)) continue;
    const spec = FIELDS[f.name]!;
    try {
      const v = spec.value!(o, fds);
      if (v !== undefined && v !== false && !Array.isArray(v)) opts.set(spec.option!, v);
    } catch {
      /* a directory that cannot be opened: no log there */
    }
  }
  return { verb, opts, rest: [] };
}
