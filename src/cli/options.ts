// Every option the stasis command knows: CRIU's names and short forms, the verbs each applies
// to, and for CRIU's options that stasis does not support yet, why, so that they are refused
// by name instead of ignored. Adding an option is one entry here.

export type Verb = 'dump' | 'pre-dump' | 'restore' | 'show' | 'check' | 'demo' | 'swrk' | 'service';
export const VERBS: readonly Verb[] = ['dump', 'pre-dump', 'restore', 'show', 'check', 'demo', 'swrk', 'service'];

/** CRIU's verbs that stasis does not have (yet), with what to use instead where there is something. */
export const MISSING_VERBS: Record<string, string> = {
  'page-server': 'stasis has no page server yet: dump into a directory and copy it',
  'lazy-pages': 'stasis has no lazy-pages daemon yet',
  dedup: 'stasis has no dedup yet',
  cpuinfo: 'stasis has no cpuinfo images yet',
  exec: 'CRIU removed exec; stasis never had it',
};

export interface OptionSpec {
  long: string;
  short?: string;
  /**
   * flag: no value (and --no-NAME unsets it); value: takes one; optional: a value only after
   * `=` (--manage-cgroups, --manage-cgroups=full); count: -v, -vv, -v4, --verbosity=4.
   */
  kind: 'flag' | 'value' | 'optional' | 'count';
  /** Repeatable: every value is kept, in order. */
  many?: boolean;
  verbs: readonly Verb[];
  /** One line of help; an option without help is not listed. */
  help?: string;
  /** The value's name in the help text. */
  arg?: string;
  /** Set for CRIU options stasis does not support yet: the reason given when one is used. */
  unsupported?: string;
  /** Verbs for which an option marked unsupported is supported all the same (--address of service). */
  supportedFor?: readonly Verb[];
}

/** Why `spec` cannot be used with `verb`, or undefined when it can. */
export function unsupportedFor(spec: OptionSpec, verb: Verb): string | undefined {
  return spec.supportedFor?.includes(verb) ? undefined : spec.unsupported;
}

const CR: Verb[] = ['dump', 'pre-dump', 'restore'];
const DUMPS: Verb[] = ['dump', 'pre-dump'];
const DUMP_RESTORE: Verb[] = ['dump', 'restore'];
const ALL: Verb[] = [...VERBS];
const later = (what: string) => `stasis does not support ${what} yet`;

export const OPTIONS: readonly OptionSpec[] = [
  { long: 'help', short: 'h', kind: 'flag', verbs: ALL, help: 'show the help of the command' },
  { long: 'version', short: 'V', kind: 'flag', verbs: ALL, help: 'show the version' },
  { long: 'tree', short: 't', kind: 'value', arg: 'PID', verbs: DUMPS, help: 'the root of the process tree to checkpoint' },
  { long: 'images-dir', short: 'D', kind: 'value', arg: 'DIR', verbs: [...CR, 'show'], help: 'the directory of the image files' },
  { long: 'work-dir', short: 'W', kind: 'value', arg: 'DIR', verbs: CR, help: 'where the log and pid files go (default: the images directory)' },
  { long: 'log-file', short: 'o', kind: 'value', arg: 'FILE', verbs: CR, help: 'write a log of every step to FILE (relative to the work directory)' },
  { long: 'verbosity', short: 'v', kind: 'count', verbs: CR, help: 'log level: -v1 errors, -v2 warnings (default), -v3 information, -v4 everything' },
  { long: 'pidfile', kind: 'value', arg: 'FILE', verbs: ['restore', 'service'], help: 'write the restored root\'s pid (the service\'s pid) to FILE (relative to the work directory)' },
  { long: 'display-stats', kind: 'flag', verbs: CR, help: 'print the statistics of the run' },
  { long: 'leave-running', short: 'R', kind: 'flag', verbs: ['dump'], help: 'leave the tree running after the checkpoint (default: kill it)' },
  { long: 'no-verify', kind: 'flag', verbs: ['restore'], help: 'restore without checking the images\' checksums (stasis-sums.json)' },
  { long: 'restore-detached', short: 'd', kind: 'flag', verbs: ['restore', 'service'], help: 'return once the tree is restored (default: wait for its root to exit); for service: run in the background' },
  { long: 'shell-job', short: 'j', kind: 'flag', verbs: DUMP_RESTORE, help: 'the tree is a shell job: its terminal is re-attached to the restoring one' },
  { long: 'file-locks', short: 'l', kind: 'flag', verbs: DUMP_RESTORE, help: 'dump and restore file locks (stasis always does)' },
  { long: 'link-remap', kind: 'flag', verbs: DUMP_RESTORE, help: 'keep an open file that lost its name but is linked elsewhere by a temporary link beside it' },
  { long: 'ghost-limit', kind: 'value', arg: 'SIZE', verbs: DUMP_RESTORE, help: 'largest deleted open file whose contents are kept (default 1M)' },
  { long: 'ghost-fiemap', kind: 'flag', verbs: DUMP_RESTORE, help: 'accepted for CRIU\'s sake: holes of ghost files are always skipped' },
  { long: 'prev-images-dir', kind: 'value', arg: 'DIR', verbs: CR, help: 'the images of the previous (pre-)dump, relative to the images directory' },
  { long: 'track-mem', kind: 'flag', verbs: DUMPS, help: 'track memory changes for a later incremental dump' },
  { long: 'track-backend', kind: 'value', arg: 'KIND', verbs: DUMPS, help: 'how changes are tracked: auto, uffd, soft-dirty or hash' },
  { long: 'input', short: 'i', kind: 'value', arg: 'FILE', many: true, verbs: ['show'], help: 'an image file to decode (or name files after the verb)' },

  // CRIU's options that stasis does not support yet: refused by name.
  // Permissions more than actions: a tree without such objects is dumped as it would be
  // without them, and one with them is refused where stasis cannot keep them yet.
  { long: 'tcp-established', kind: 'flag', verbs: DUMP_RESTORE, help: 'checkpoint and restore TCP connections (in repair mode, locked by the network lock meanwhile)' },
  { long: 'ext-unix-sk', kind: 'flag', verbs: DUMP_RESTORE, help: 'allow Unix sockets connected outside the tree' },
  { long: 'force-irmap', kind: 'flag', verbs: DUMP_RESTORE, help: 'accepted for CRIU\'s sake: inotify watches are always found by file handle' },
  { long: 'irmap-scan-path', kind: 'value', arg: 'PATH', many: true, verbs: DUMP_RESTORE, help: 'accepted for CRIU\'s sake, as --force-irmap' },
  { long: 'tcp-close', kind: 'flag', verbs: DUMP_RESTORE, help: 'restore TCP connections closed (at dump: dump them without their state)' },
  { long: 'skip-in-flight', kind: 'flag', verbs: DUMP_RESTORE, help: 'leave out connections a listener has not accepted yet (they are lost)' },
  { long: 'network-lock', kind: 'value', arg: 'METHOD', verbs: DUMP_RESTORE, help: 'how connections are locked until restored: iptables (default), nftables or skip' },
  { long: 'manage-cgroups', kind: 'optional', arg: 'MODE', verbs: DUMP_RESTORE, help: 'how the tasks\' cgroups are restored: none, props, soft (default, also without MODE), full, strict or ignore' },
  { long: 'cgroup-root', kind: 'value', arg: '[CTRL:]/PATH', many: true, verbs: DUMP_RESTORE, help: 'dump: the cgroups of a hierarchy (CTRL, or every one) from PATH down; restore: the cgroups dumped at its top go to PATH' },
  { long: 'cgroup-props', kind: 'value', verbs: DUMP_RESTORE, unsupported: later('--cgroup-props') },
  { long: 'cgroup-props-file', kind: 'value', verbs: DUMP_RESTORE, unsupported: later('--cgroup-props-file') },
  { long: 'cgroup-dump-controller', kind: 'value', many: true, verbs: DUMP_RESTORE, unsupported: later('--cgroup-dump-controller') },
  { long: 'cgroup-yard', kind: 'value', verbs: DUMP_RESTORE, unsupported: later('--cgroup-yard') },
  { long: 'freeze-cgroup', kind: 'value', arg: 'DIR', verbs: DUMPS, help: 'freeze the tree through this cgroup (v2, or the v1 freezer\'s), which must hold its processes and no other' },
  // At dump they say how the mount namespace will be restored (its root, its external mounts); at restore they give them.
  { long: 'root', short: 'r', kind: 'value', arg: 'PATH', verbs: DUMP_RESTORE, help: 'dump: the tree\'s root mount is given at restore (a container\'s root); restore: the directory it is a bind of' },
  { long: 'external', kind: 'value', many: true, verbs: DUMP_RESTORE, arg: 'KEY:VAL', help: 'dump mnt[MOUNTPOINT]:NAME, restore mnt[NAME]:PATH: as --ext-mount-map; mnt[] (mnt[]:s, mnt[]:m): as --ext-mount-map auto (with --enable-external-sharing, --enable-external-masters); dump pipe:[ID]: the pipe\'s other end is outside the tree, and is given back at restore with --inherit-fd; restore veth[IN]:OUT[@BRIDGE]: a veth whose peer was outside gets the new peer OUT; restore netdev[IN]:OUT: the host\'s veth OUT (made beforehand) is moved in as IN; macvlan[IN]:DEV: a macvlan is made on DEV (other kinds of external resources are refused)' },
  { long: 'ext-mount-map', short: 'M', kind: 'value', many: true, arg: 'KEY:VAL', verbs: DUMP_RESTORE, help: 'dump MOUNTPOINT:NAME: the mount at MOUNTPOINT is external, kept in the image as NAME; restore NAME:PATH: it is bound from PATH (of stasis\'s mounts; a relative one from /); auto: a mount that shows what a mount of stasis\'s own shows is external, bound at restore from where stasis sees it' },
  { long: 'enable-external-masters', kind: 'flag', verbs: DUMP_RESTORE, help: 'with --ext-mount-map auto: a mount that is a slave of a peer group of stasis\'s mounts is external too, and a slave of it again at restore' },
  { long: 'enable-external-sharing', kind: 'flag', verbs: DUMP_RESTORE, help: 'with --ext-mount-map auto: a shared mount is taken as external too when stasis\'s mounts show what it shows (restored in its peer group when the group is the tree\'s own; refused when a mount outside the tree is in it)' },
  { long: 'mntns-compat-mode', kind: 'flag', verbs: DUMP_RESTORE, help: 'accepted: the older of CRIU\'s two ways of restoring mounts; stasis has one, whose result is the same' },
  { long: 'skip-mnt', kind: 'value', many: true, verbs: DUMP_RESTORE, unsupported: later('mount namespaces') },
  { long: 'enable-fs', kind: 'value', verbs: DUMP_RESTORE, unsupported: later('mount namespaces') },
  { long: 'inherit-fd', kind: 'value', many: true, verbs: ['restore'], arg: 'fd[N]:KEY', help: 'the images\' file KEY (pipe:[ID], or a path without its leading /) gets this process\'s fd N instead of being made anew; a pipe\'s contents are not put back' },
  { long: 'empty-ns', kind: 'value', verbs: DUMP_RESTORE, arg: 'net', help: 'the tree\'s network namespace is not dumped, and is restored new and empty' },
  { long: 'join-ns', short: 'J', kind: 'value', many: true, verbs: ['restore'], arg: 'NS:PID|FILE', help: 'the restored tree joins this net, ipc or uts namespace instead of a new one' },
  { long: 'restore-sibling', short: 'S', kind: 'flag', verbs: ['restore'], help: 'the root is a child of stasis\'s parent, which waits for it (implies -d)' },
  { long: 'leave-stopped', short: 's', kind: 'flag', verbs: CR, unsupported: later('--leave-stopped') },
  // runc sets it on every restore: CRIU may then reopen a device by another path; stasis reopens each by its own path, and fails where it is missing.
  { long: 'evasive-devices', kind: 'flag', verbs: DUMP_RESTORE, supportedFor: ['restore'], unsupported: later('--evasive-devices at dump'), help: 'accepted: a device is reopened by its path (a missing one fails the restore)' },
  // Accepted at dump, where it changes nothing: a pty slave whose master is outside the tree is refused still (or taken by --shell-job).
  { long: 'orphan-pts-master', kind: 'flag', verbs: DUMP_RESTORE, help: 'accepted (runc sets it): a pty whose master is outside the tree is refused at dump unless --shell-job' },
  { long: 'lazy-pages', kind: 'flag', verbs: DUMP_RESTORE, supportedFor: ['restore'], help: 'restore: run the tree before its private memory is in; it is filled as it is touched, and in the background (with -d, returns once it is all in)', unsupported: 'stasis has no page server: dump --lazy-pages is not supported; dump as usual and restore with --lazy-pages' },
  { long: 'page-server', kind: 'flag', verbs: CR, unsupported: later('a page server') },
  { long: 'address', kind: 'value', arg: 'PATH', verbs: [...CR, 'service'], supportedFor: ['service'], help: 'the service\'s socket (default /var/run/criu_service.socket)', unsupported: later('a page server') },
  { long: 'port', kind: 'value', verbs: CR, unsupported: later('a page server') },
  { long: 'auto-dedup', kind: 'flag', verbs: CR, unsupported: later('--auto-dedup') },
  { long: 'pre-dump-mode', kind: 'value', verbs: DUMPS, unsupported: later('--pre-dump-mode (its pre-dumps read memory with process_vm_readv)') },
  { long: 'action-script', kind: 'value', many: true, verbs: CR, unsupported: later('action scripts') },
  { long: 'exec-cmd', kind: 'flag', verbs: ['restore'], unsupported: later('--exec-cmd') },
  { long: 'status-fd', kind: 'value', verbs: CR, unsupported: later('--status-fd') },
  { long: 'timeout', kind: 'value', verbs: DUMPS, unsupported: later('--timeout') },
  { long: 'cpu-cap', kind: 'optional', verbs: DUMP_RESTORE, unsupported: later('cpuinfo checks') },
  { long: 'weak-sysctls', kind: 'flag', verbs: DUMP_RESTORE, unsupported: later('sysctls') },
  { long: 'lsm-profile', kind: 'value', verbs: ['restore'], unsupported: later('LSM profiles') },
  { long: 'lsm-mount-context', kind: 'value', verbs: ['restore'], unsupported: later('LSM profiles') },
  { long: 'pidfd-store', kind: 'value', verbs: DUMPS, unsupported: later('--pidfd-store') },
  { long: 'log-pid', kind: 'flag', verbs: CR, unsupported: later('per-process logs') },
  { long: 'file-validation', kind: 'value', verbs: DUMP_RESTORE, unsupported: later('--file-validation') },
  { long: 'skip-file-rwx-check', kind: 'flag', verbs: ['restore'], unsupported: later('--skip-file-rwx-check') },
  { long: 'unprivileged', kind: 'flag', verbs: CR, unsupported: later('running without root') },
  { long: 'allow-uprobes', kind: 'flag', verbs: DUMP_RESTORE, unsupported: later('uprobes') },
  { long: 'stream', kind: 'flag', verbs: CR, unsupported: later('image streaming') },
  { long: 'tls', kind: 'flag', verbs: CR, unsupported: later('TLS') },
  { long: 'config', kind: 'value', verbs: ALL, unsupported: later('configuration files') },
  { long: 'no-default-config', kind: 'flag', verbs: ALL, unsupported: later('configuration files') },
  { long: 'libdir', short: 'L', kind: 'value', verbs: CR, unsupported: later('plugins') },
];

export function optionByLong(name: string): OptionSpec | undefined {
  return OPTIONS.find((o) => o.long === name);
}

export function optionByShort(c: string): OptionSpec | undefined {
  return OPTIONS.find((o) => o.short === c);
}
