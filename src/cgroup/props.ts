// The properties of a cgroup directory that are dumped and set again (CRIU's cgroup-props.c
// builtins for v1; for v2 the core files and the limits of its common controllers), how
// each is read into a CgroupPropEntry and written back.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { CgroupPermsSchema, CgroupPropEntrySchema, type CgroupPerms, type CgroupPropEntry } from '../image/gen/stasis/cgroup_pb.js';

const V1: Record<string, readonly string[]> = {
  cpu: ['cpu.shares', 'cpu.cfs_period_us', 'cpu.cfs_quota_us', 'cpu.rt_period_us', 'cpu.rt_runtime_us'],
  // limit_in_bytes before memsw.limit_in_bytes: the kernel wants memsw >= the limit.
  memory: [
    'memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.swappiness', 'memory.soft_limit_in_bytes',
    'memory.move_charge_at_immigrate', 'memory.oom_control', 'memory.use_hierarchy', 'memory.kmem.limit_in_bytes',
    'memory.kmem.tcp.limit_in_bytes',
  ],
  cpuset: [
    'cpuset.cpus', 'cpuset.mems', 'cpuset.memory_migrate', 'cpuset.cpu_exclusive', 'cpuset.mem_exclusive',
    'cpuset.mem_hardwall', 'cpuset.memory_spread_page', 'cpuset.memory_spread_slab', 'cpuset.sched_load_balance',
    'cpuset.sched_relax_domain_level',
  ],
  blkio: ['blkio.weight'],
  net_cls: ['net_cls.classid'],
  net_prio: ['net_prio.ifpriomap'],
  pids: ['pids.max'],
  devices: ['devices.list'],
};
const V1_GLOBAL = ['cgroup.clone_children', 'notify_on_release', 'cgroup.procs', 'tasks'];
// cgroup.subtree_control first: the controllers' files of the children exist only once it is set.
const V2 = [
  'cgroup.subtree_control', 'cgroup.max.descendants', 'cgroup.max.depth', 'cgroup.procs',
  'cpuset.cpus', 'cpuset.mems', 'cpu.weight', 'cpu.max', 'memory.min', 'memory.low', 'memory.high', 'memory.max',
  'memory.swap.max', 'pids.max',
];

/** The properties to look for in a directory of the hierarchy with these controllers, in the order they are set. */
export function propertyNames(cnames: readonly string[]): readonly string[] {
  if (cnames.length === 1 && cnames[0] === '') return V2;
  return [...cnames.flatMap((c) => V1[c] ?? []), ...V1_GLOBAL];
}

/**
 * Set only in a directory the restore made (CRIU's special_props): some cannot change once the
 * cgroup has children or tasks (devices.list, cpuset's), so an existing one keeps its own.
 */
export const SPECIAL = new Set([
  'cpuset.cpus', 'cpuset.mems', 'devices.list', 'memory.kmem.limit_in_bytes', 'memory.swappiness', 'memory.oom_control', 'memory.use_hierarchy',
]);

/** Only their permissions are kept: their contents are the tasks. */
const MEMBERSHIP = new Set(['cgroup.procs', 'tasks']);
const LLONG_MAX = '9223372036854775807';

export function permsOf(st: fs.Stats): CgroupPerms {
  return create(CgroupPermsSchema, { mode: st.mode, uid: st.uid, gid: st.gid });
}

/** Reads property `name` of directory `dir`, or undefined where this kernel has no such file. */
export function readProperty(dir: string, name: string): CgroupPropEntry | undefined {
  const file = `${dir}/${name}`;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return undefined;
  }
  let value = MEMBERSHIP.has(name) ? '' : fs.readFileSync(file, 'utf8').replace(/\n$/, '');
  // CRIU's forms: "unlimited" as -1, and of oom_control only whether the OOM killer is off.
  if (value === LLONG_MAX) value = '-1';
  if (name === 'memory.oom_control') value = /oom_kill_disable (\d+)/.exec(value)?.[1] ?? '0';
  return create(CgroupPropEntrySchema, { name, value, perms: permsOf(st) });
}

/** Gives `fd` (of `what`) the mode and owner of `perms`, where they differ (read-only files may not be chmod'ed). */
export function setPerms(fd: number, perms: CgroupPerms | undefined): void {
  if (!perms) return;
  const st = fs.fstatSync(fd);
  if (st.mode !== perms.mode) fs.fchmodSync(fd, perms.mode & 0o7777);
  if (st.uid !== perms.uid || st.gid !== perms.gid) fs.fchownSync(fd, perms.uid, perms.gid);
}

/** Sets property `p` in directory `dir`: its permissions, then its value (CRIU's restore_cgroup_prop). */
export function writeProperty(dir: string, p: CgroupPropEntry, warn: (m: string) => void): void {
  if (p.name === 'devices.list') {
    // A whitelist: everything denied, then each line allowed again, one write per line.
    writeLines(`${dir}/devices.deny`, ['a'], warn);
    if (p.value !== '') writeLines(`${dir}/devices.allow`, p.value.split('\n'), warn);
    return;
  }
  if (p.name === 'net_prio.ifpriomap') {
    // One interface a write; those at priority 0, a new cgroup's default, are left (CRIU's filter).
    const lines = p.value.split('\n').filter((l) => /^\S+ \d+$/.test(l) && !/ 0$/.test(l));
    if (lines.length) writeLines(`${dir}/${p.name}`, lines, warn);
    return;
  }
  // A new cgroup is a domain; of the other types only "threaded" can be written (CRIU dumps it).
  if (p.name === 'cgroup.type' && p.value !== 'threaded') return;
  if (p.name === 'memory.swappiness' && p.value === '60') return;
  if (p.name === 'memory.oom_control' && p.value === '0') return;
  const fd = fs.openSync(`${dir}/${p.name}`, fs.constants.O_WRONLY);
  try {
    setPerms(fd, p.perms);
    if (MEMBERSHIP.has(p.name)) return;
    let value = p.value;
    if (p.name === 'cgroup.subtree_control') {
      if (value === '') return;
      value = value.split(' ').map((c) => `+${c}`).join(' ');
    }
    try {
      fs.writeSync(fd, value);
    } catch (e) {
      // A knob the kernel has deprecated since (memory.kmem.limit_in_bytes): as CRIU, said and skipped.
      if ((e as NodeJS.ErrnoException).code !== 'EOPNOTSUPP') throw e;
      warn(`${dir}/${p.name}: the kernel no longer takes ${JSON.stringify(value)} (EOPNOTSUPP), left as it is`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function writeLines(file: string, lines: string[], warn: (m: string) => void): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    for (const l of lines) {
      try {
        fs.writeSync(fd, l);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EOPNOTSUPP') throw e;
        warn(`${file}: ${JSON.stringify(l)} not taken (EOPNOTSUPP)`);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}
