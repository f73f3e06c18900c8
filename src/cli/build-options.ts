// From parsed CRIU options to the library's options: one place for what each option means,
// shared by the command line and CRIU's RPC (src/rpc), which fills the same option map from
// a CriuReq. The caller brings what is not an option: the log, progress, RPC notifications.
import fs from 'node:fs';
import path from 'node:path';
import type { DumpOptions, NetworkLockMethod, PreDumpOptions, RestoreOptions, TrackBackend, Progress, Notify } from '../api/index.js';
import { StasisError } from '../errors.js';
import { FileLog, NO_LOG, type Log, type LogLevel } from '../log.js';
import { requirePid, requireString, optString, flag, type ParsedArgs } from './args.js';

export interface RunIo {
  log: Log;
  onProgress?: ((p: Progress) => void) | undefined;
  notify?: Notify | undefined;
}

/** -W DIR, or the images directory, as CRIU: the log and pid files are relative to it. */
export function workDir(a: ParsedArgs): string {
  return optString(a, 'work-dir') ?? optString(a, 'images-dir') ?? '.';
}

/** The run's log: -o FILE (relative to the work directory) at -v level; none without -o. */
export function openLog(a: ParsedArgs): Log & { close?: () => void } {
  const file = optString(a, 'log-file');
  const v = a.opts.get('verbosity');
  const level = (typeof v === 'number' ? Math.min(4, Math.max(0, v)) : 2) as LogLevel;
  if (file === undefined || file === '-') return NO_LOG;
  const dir = workDir(a);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return new FileLog(path.resolve(dir, file), level);
}

export function dumpOptions(a: ParsedArgs, io: RunIo): DumpOptions {
  // Checked only: the devices they name are made at restore.
  netExternals(a, 'dump');
  return {
    pid: requirePid(a),
    imagesDir: requireString(a, 'images-dir'),
    leaveRunning: flag(a, 'leave-running'),
    shellJob: flag(a, 'shell-job'),
    ...ghostLimit(a),
    linkRemap: flag(a, 'link-remap'),
    prevImagesDir: optString(a, 'prev-images-dir'),
    trackMem: flag(a, 'track-mem'),
    trackBackend: trackBackend(a),
    tcpEstablished: flag(a, 'tcp-established'),
    extUnixSk: flag(a, 'ext-unix-sk'),
    externalPipes: externalPipes(a),
    tcpClose: flag(a, 'tcp-close'),
    skipInFlight: flag(a, 'skip-in-flight'),
    networkLock: networkLock(a),
    emptyNs: emptyNs(a),
    manageCgroups: manageCgroups(a),
    cgroupRoots: cgroupRoots(a),
    root: optString(a, 'root'),
    freezeCgroup: optString(a, 'freeze-cgroup'),
    extMounts: extMounts(a),
    extAuto: extAuto(a),
    extDevs: extDevs(a, 'dump'),
    onProgress: io.onProgress,
    log: io.log,
    notify: io.notify,
  };
}

export function preDumpOptions(a: ParsedArgs, io: RunIo): PreDumpOptions {
  return {
    pid: requirePid(a),
    imagesDir: requireString(a, 'images-dir'),
    prevImagesDir: optString(a, 'prev-images-dir'),
    trackBackend: trackBackend(a),
    // --root and --ext-mount-map change nothing here: a pre-dump writes no mount.
    freezeCgroup: optString(a, 'freeze-cgroup'),
    onProgress: io.onProgress,
    log: io.log,
    notify: io.notify,
  };
}

export function restoreOptions(a: ParsedArgs, io: RunIo & { onRestored?: (pid: number) => void }): RestoreOptions {
  return {
    imagesDir: requireString(a, 'images-dir'),
    detach: flag(a, 'restore-detached'),
    sibling: flag(a, 'restore-sibling'),
    shellJob: flag(a, 'shell-job'),
    noVerify: flag(a, 'no-verify'),
    tcpEstablished: flag(a, 'tcp-established'),
    extUnixSk: flag(a, 'ext-unix-sk'),
    tcpClose: flag(a, 'tcp-close'),
    emptyNs: emptyNs(a),
    joinNs: joinNs(a),
    manageCgroups: manageCgroups(a),
    cgroupRoots: cgroupRoots(a),
    lazyPages: flag(a, 'lazy-pages'),
    root: optString(a, 'root'),
    extMounts: extMounts(a),
    extAuto: extAuto(a) !== undefined,
    extDevs: extDevs(a, 'restore'),
    netExternals: netExternals(a, 'restore'),
    inheritFds: inheritFds(a),
    onProgress: io.onProgress,
    log: io.log,
    notify: io.notify,
    onRestored: (pid) => {
      const pidfile = optString(a, 'pidfile');
      if (pidfile !== undefined) fs.writeFileSync(path.resolve(workDir(a), pidfile), `${pid}`);
      io.onRestored?.(pid);
    },
  };
}

/** --ghost-limit SIZE: bytes, or with a K, M or G suffix (CRIU's form). */
function ghostLimit(a: ParsedArgs): { ghostLimit?: number } {
  const v = optString(a, 'ghost-limit');
  if (v === undefined) return {};
  const m = /^(\d+)([KMG]?)$/i.exec(v);
  if (!m) throw new StasisError('E_BAD_ARGS', `Invalid --ghost-limit ${JSON.stringify(v)}: expected a size such as 1048576, 512K or 16M`);
  const mult = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[(m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'];
  return { ghostLimit: Number(m[1]) * mult };
}

function trackBackend(a: ParsedArgs): TrackBackend | undefined {
  const v = optString(a, 'track-backend');
  if (v === undefined) return undefined;
  if (v !== 'auto' && v !== 'uffd' && v !== 'soft-dirty' && v !== 'hash') {
    throw new StasisError('E_BAD_ARGS', `Unknown --track-backend ${JSON.stringify(v)}: expected auto, uffd, soft-dirty or hash`);
  }
  return v;
}

const CLONE_NEWNET = 0x40000000;

/** The values of a repeatable option. */
const values = (a: ParsedArgs, name: string): string[] => {
  const v = a.opts.get(name);
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
};

// --external keys of mounts (CRIU's external.c and mount.c): mnt[KEY]:VAL is --ext-mount-map
// KEY:VAL, mnt[] (with :s or :m) is --ext-mount-map auto (with external sharing or masters).
const MNT_KEY = /^mnt\[(.*)\](?::(.*))?$/s;
const DEV_KEY = /^dev\[(.+)\]:(.+)$/s;

/** --external dev[MAJOR/MINOR]:KEY at dump, dev[KEY]:DEVICE at restore (CRIU's). */
function extDevs(a: ParsedArgs, verb: 'dump' | 'restore'): Map<string, string> | undefined {
  const pairs: [string, string][] = [];
  for (const x of values(a, 'external')) {
    if (!x.startsWith('dev[')) continue;
    const m = DEV_KEY.exec(x);
    if (!m || (verb === 'dump' && !/^\d+\/\d+$/.test(m[1]!))) throw new StasisError('E_BAD_ARGS', `Invalid --external ${JSON.stringify(x)}: give dev[MAJOR/MINOR]:KEY at dump, dev[KEY]:DEVICE at restore`);
    pairs.push([m[1]!, m[2]!]);
  }
  return pairs.length ? new Map(pairs) : undefined;
}

/**
 * --ext-mount-map MOUNTPOINT:NAME and --external mnt[MOUNTPOINT]:NAME at dump, NAME:HOSTPATH
 * and mnt[NAME]:HOSTPATH at restore (CRIU's; `auto` and mnt[] are extAuto()'s).
 */
function extMounts(a: ParsedArgs): Map<string, string> | undefined {
  const pairs: [string, string][] = [];
  for (const m of values(a, 'ext-mount-map')) {
    if (m === 'auto') continue;
    const i = m.indexOf(':');
    if (i <= 0 || i === m.length - 1) throw new StasisError('E_BAD_ARGS', `Invalid --ext-mount-map ${JSON.stringify(m)}: give MOUNTPOINT:NAME at dump, NAME:PATH at restore, or auto`);
    pairs.push([m.slice(0, i), m.slice(i + 1)]);
  }
  for (const x of values(a, 'external')) {
    const m = MNT_KEY.exec(x);
    if (!m || m[1] === '') continue;
    if (!m[2]) throw new StasisError('E_BAD_ARGS', `Invalid --external ${JSON.stringify(x)}: give mnt[MOUNTPOINT]:NAME at dump, mnt[NAME]:PATH at restore`);
    pairs.push([m[1]!, m[2]]);
  }
  return pairs.length ? new Map(pairs) : undefined;
}

/**
 * --ext-mount-map auto or --external mnt[] (CRIU's autodetection of external mounts), with
 * mnt[]:s or --enable-external-sharing, mnt[]:m or --enable-external-masters.
 */
function extAuto(a: ParsedArgs): { sharing: boolean; masters: boolean } | undefined {
  let auto = values(a, 'ext-mount-map').includes('auto');
  let sharing = flag(a, 'enable-external-sharing'), masters = flag(a, 'enable-external-masters');
  for (const x of values(a, 'external')) {
    const m = MNT_KEY.exec(x);
    if (!m || m[1] !== '') continue;
    if (m[2] !== undefined && m[2] !== 's' && m[2] !== 'm') throw new StasisError('E_BAD_ARGS', `Invalid --external ${JSON.stringify(x)}: mnt[] takes :s (external sharing) or :m (external masters)`);
    auto = true;
    sharing ||= m[2] === 's';
    masters ||= m[2] === 'm';
  }
  return auto ? { sharing, masters } : undefined;
}

/**
 * --external KEY:VAL (CRIU's), for network devices only: veth[IN]:OUT[@BRIDGE], netdev[IN]:OUT, macvlan[IN]:DEV
 * at restore (at dump they name nothing stasis needs); other kinds of external resources are refused.
 */
function netExternals(a: ParsedArgs, verb: 'dump' | 'restore'): Map<string, string> | undefined {
  const list = a.opts.get('external');
  const v = (Array.isArray(list) ? list : typeof list === 'string' ? [list] : []).filter((x) => {
    if (MNT_KEY.test(x)) return false;
    if (x.startsWith('dev[')) return false;
    if (!PIPE_KEY.test(x)) return true;
    if (verb === 'restore') throw new StasisError('E_BAD_ARGS', `Cannot use --external ${x} at restore: give the pipe with --inherit-fd fd[N]:${x}`);
    return false;
  });
  if (!v.length) return undefined;
  return new Map(v.map((x) => {
    const m = /^((?:veth|macvlan|netdev)\[[^\]]+\]):(.+)$/.exec(x);
    if (!m) throw new StasisError('E_UNSUPPORTED', `Cannot use --external ${JSON.stringify(x)}: stasis takes only mnt[...], dev[...], pipe:[ID], veth[IN]:OUT[@BRIDGE], netdev[IN]:OUT and macvlan[IN]:DEVICE`);
    return [m[1]!, m[2]!] as [string, string];
  }));
}

const PIPE_KEY = /^pipe:\[\d+\]$/;

/** --external pipe:[ID] at dump: a pipe whose other end is outside the tree, to be inherited at restore. */
function externalPipes(a: ParsedArgs): string[] | undefined {
  const list = a.opts.get('external');
  const v = (Array.isArray(list) ? list : typeof list === 'string' ? [list] : []).filter((x) => PIPE_KEY.test(x));
  return v.length ? v : undefined;
}

/**
 * --inherit-fd fd[N]:KEY (CRIU's form), any number of them. debug[N]:TEXT writes TEXT to fd
 * N at once, as CRIU does: a mark in the tree's output stream where the restore happened.
 */
function inheritFds(a: ParsedArgs): RestoreOptions['inheritFds'] {
  const list = a.opts.get('inherit-fd');
  const v = Array.isArray(list) ? list : typeof list === 'string' ? [list] : [];
  const out: { fd: number; key: string }[] = [];
  for (const x of v) {
    const m = /^(fd|debug)\[(\d+)\]:(.+)$/s.exec(x);
    if (!m) throw new StasisError('E_BAD_ARGS', `Invalid --inherit-fd ${JSON.stringify(x)}: expected fd[N]:KEY (or debug[N]:TEXT)`);
    const fd = Number(m[2]);
    if (m[1] === 'fd') out.push({ fd, key: m[3]! });
    else {
      try {
        fs.writeSync(fd, m[3]!);
      } catch (err) {
        throw new StasisError('E_BAD_ARGS', `Cannot write the debug text of --inherit-fd ${x} to fd ${fd}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
      }
    }
  }
  return out.length ? out : undefined;
}

/** --empty-ns net (CRIU's; only the network namespace can be left empty). */
function emptyNs(a: ParsedArgs): number | undefined {
  const v = optString(a, 'empty-ns');
  if (v === undefined) return undefined;
  if (v !== 'net') throw new StasisError('E_UNSUPPORTED', `Cannot use --empty-ns ${JSON.stringify(v)}: only the network namespace (net) can be left empty`);
  return CLONE_NEWNET;
}

/** --join-ns NS:PID or NS:FILE, for net, ipc and uts (CRIU's extra options, for user namespaces, are refused). */
function joinNs(a: ParsedArgs): RestoreOptions['joinNs'] {
  const list = a.opts.get('join-ns');
  if (!Array.isArray(list) || list.length === 0) return undefined;
  return list.map((v) => {
    const m = /^(\w+):([^,]+)(,.*)?$/.exec(v);
    if (!m) throw new StasisError('E_BAD_ARGS', `Invalid --join-ns ${JSON.stringify(v)}: expected NS:PID or NS:FILE`);
    const [, ns, target, extra] = m;
    if (ns !== 'net' && ns !== 'ipc' && ns !== 'uts') throw new StasisError('E_UNSUPPORTED', `Cannot join a ${ns} namespace (--join-ns ${v}): stasis joins net, ipc and uts namespaces`);
    if (extra) throw new StasisError('E_UNSUPPORTED', `Cannot use the extra options of --join-ns ${v}: they are for user namespaces`);
    return { ns, file: /^\d+$/.test(target!) ? `/proc/${target}/ns/${ns}` : target! };
  });
}

const CG_MODES = ['none', 'props', 'soft', 'full', 'strict', 'ignore'] as const;

/** --manage-cgroups [MODE] (CRIU's; without MODE, and as `default`, soft; the RPC's manage_cgroups=false is ignore). */
function manageCgroups(a: ParsedArgs): DumpOptions['manageCgroups'] {
  const v = a.opts.get('manage-cgroups');
  if (v === undefined || v === false) return undefined;
  if (v === true || v === 'default') return 'soft';
  const mode = CG_MODES.find((m) => m === v);
  if (!mode) throw new StasisError('E_BAD_ARGS', `Unknown --manage-cgroups ${JSON.stringify(v)}: expected ${CG_MODES.join(', ')}`);
  return mode;
}

/** --cgroup-root [CONTROLLER:]/PATH, any number of them (CRIU's form). */
function cgroupRoots(a: ParsedArgs): RestoreOptions['cgroupRoots'] {
  const list = a.opts.get('cgroup-root');
  const values = Array.isArray(list) ? list : typeof list === 'string' ? [list] : [];
  return values.map((v) => {
    const i = v.indexOf(':');
    const path = i < 0 ? v : v.slice(i + 1);
    if (!path.startsWith('/')) throw new StasisError('E_BAD_ARGS', `Invalid --cgroup-root ${JSON.stringify(v)}: expected [CONTROLLER:]/PATH`);
    return i < 0 ? { path } : { controller: v.slice(0, i), path };
  });
}

/** --network-lock METHOD (CRIU's values). A restore unlocks with the method its images name. */
function networkLock(a: ParsedArgs): NetworkLockMethod | undefined {
  const v = optString(a, 'network-lock');
  if (v === undefined) return undefined;
  if (v !== 'iptables' && v !== 'nftables' && v !== 'skip') {
    throw new StasisError('E_BAD_ARGS', `Unknown --network-lock ${JSON.stringify(v)}: expected iptables, nftables or skip`);
  }
  return v;
}
