// The cgroups of a tree, as CRIU dumps them (criu/cgroup.c): each task's membership (its
// line of every hierarchy in /proc/PID/cgroup) is a cgroup set, numbered from 1, set 1 being
// stasis's own; a task's core names its set (cg_set), inventory stasis's (root_cg_set).
// Only sets other than stasis's go into cgroup.img, with, per hierarchy, the directory each
// of their members is in and every directory below it, with their properties and
// permissions. A hierarchy where a set's member is where stasis is gets no directories:
// unlike CRIU, which then walks the whole hierarchy from the task's cgroup (all of the
// machine's from `/`), and at restore makes again whichever of them are gone.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { openCgroupFs, closeFd } from '../sys/index.js';
import { parseCgroupFile, parseMountinfo, type CgroupMember, type MountInfo } from '../proc/index.js';
import {
  CgroupEntrySchema, CgroupDirEntrySchema, CgControllerEntrySchema, type CgroupEntry, type CgroupDirEntry, type CgControllerEntry,
} from '../image/gen/stasis/cgroup_pb.js';
import { StasisError } from '../errors.js';
import type { Log } from '../log.js';
import { permsOf, propertyNames, readProperty } from './props.js';
import type { CgroupRoot } from './restore-cgroups.js';

/** CRIU's --manage-cgroups modes; `soft` is the default. */
export type CgroupMode = 'ignore' | 'none' | 'props' | 'soft' | 'full' | 'strict';

/** The set stasis itself is in: tasks in it are left where the restoring stasis is. */
export const OWN_CG_SET = 1;

export interface TreeCgroups {
  /** The set of each live task, by pid. */
  setOf: Map<number, number>;
  /** cgroup.img, or undefined when every task is in stasis's own set (CRIU writes none then). */
  image: CgroupEntry | undefined;
}

const key = (m: CgroupMember[]) => m.map((x) => `${x.name}:${x.path}`).join('\n');

function readMembers(file: string, pid: number): CgroupMember[] {
  try {
    return parseCgroupFile(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new StasisError('E_DUMP_FAILED', `Cannot read the cgroups of pid ${pid} (${file}): ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The sets of the live tasks (`tids` are each one's threads, the leader first), and the
 * image. `ownCgroupNs`: the tree has a cgroup namespace of its own, which stasis restores only
 * with its tasks in stasis's cgroups (at the namespace's root).
 */
export function collectCgroups(
  tasks: { pid: number; tids: number[] }[], mode: CgroupMode, ownCgroupNs: boolean, log: Log, roots: CgroupRoot[] = [],
): TreeCgroups {
  const own = readMembers('/proc/self/cgroup', process.pid);
  const sets = new Map<string, { id: number; members: CgroupMember[] }>([[key(own), { id: OWN_CG_SET, members: own }]]);
  const setOf = new Map<number, number>();
  for (const t of tasks) {
    const members = readMembers(`/proc/${t.pid}/cgroup`, t.pid);
    for (const tid of t.tids) {
      if (tid === t.pid) continue;
      const theirs = readMembers(`/proc/${t.pid}/task/${tid}/cgroup`, t.pid);
      if (key(theirs) !== key(members)) {
        const diff = theirs.find((m, i) => m.path !== members[i]?.path);
        throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid} of pid ${t.pid}: it is in cgroup ${diff?.path ?? '?'} of hierarchy "${diff?.name ?? ''}", its process elsewhere; stasis cannot restore threaded cgroups (threads in cgroups of their own)`);
      }
    }
    let set = sets.get(key(members));
    if (!set) {
      set = { id: sets.size + 1, members };
      sets.set(key(members), set);
      log.info(`cgroup set ${set.id}: ${members.map((m) => `${m.name || 'v2'}:${m.path}`).join(' ')}`);
    }
    if (ownCgroupNs && set.id !== OWN_CG_SET) {
      const m = members.find((x, i) => x.path !== own[i]?.path);
      throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${t.pid}: it is in a cgroup namespace of its tree's own and in cgroup ${m?.path ?? '?'} of hierarchy "${m?.name ?? ''}", not stasis's; stasis restores a cgroup namespace only with its tasks in stasis's cgroups`);
    }
    setOf.set(t.pid, set.id);
  }
  const others = [...sets.values()].filter((s) => s.id !== OWN_CG_SET);
  if (others.length === 0) {
    log.info('every task is in stasis\'s cgroups: no cgroup.img');
    return { setOf, image: undefined };
  }
  const ownPath = new Map(own.map((m) => [m.name, m.path]));
  for (const s of others) {
    for (const m of s.members) {
      if (!ownPath.has(m.name)) throw new StasisError('E_UNSUPPORTED', `Cannot dump the cgroups of set ${s.id}: hierarchy "${m.name}" is not one stasis is in`);
    }
  }
  const controllers: CgControllerEntry[] = own.map((h) => {
    const cnames = h.name === '' ? [''] : h.name.startsWith('name=') ? [h.name] : h.name.split(',');
    // The cgroups of this hierarchy the tree is in, where stasis is not.
    // --cgroup-root at dump (CRIU's): the hierarchy is walked from there instead, empty cgroups and all.
    const root = roots.find((r) => r.controller !== undefined && r.controller.split(',').some((n) => cnames.includes(n)))?.path ??
      roots.find((r) => r.controller === undefined)?.path;
    const paths = root !== undefined ? [root] : [...new Set(others.flatMap((s) => s.members.filter((m) => m.name === h.name && m.path !== ownPath.get(h.name)).map((m) => m.path)))];
    const dirs = mode === 'ignore' || paths.length === 0 ? [] : walkHierarchy(h.name, cnames, paths, log);
    // is_threaded (CRIU 3.18) is left out: crit 3.17 does not know it, and stasis refuses threads in cgroups of their own.
    return create(CgControllerEntrySchema, { cnames, dirs });
  });
  const image = create(CgroupEntrySchema, {
    sets: others.map((s) => ({ id: s.id, ctls: s.members.map((m) => ({ name: m.name, path: m.path })) })),
    controllers,
  });
  return { setOf, image };
}

/** The directories at `paths` of hierarchy `name` and all below them, as CRIU's heads and children. */
function walkHierarchy(name: string, cnames: string[], paths: string[], log: Log): CgroupDirEntry[] {
  const hs = new Hierarchies();
  try {
    let base: string | undefined;
    try {
      base = hs.base(name);
    } catch (e) {
      throw new StasisError('E_DUMP_FAILED', `Cannot open cgroup hierarchy "${name}": ${(e as Error).message}`, { cause: e });
    }
    const props = propertyNames(cnames);
    // Shortest first: a path below another is found inside the other's walk.
    const heads: { path: string; entry: CgroupDirEntry }[] = [];
    for (const p of [...paths].sort((a, b) => a.length - b.length)) {
      if (heads.some((h) => h.path === '/' || p === h.path || p.startsWith(`${h.path}/`))) continue;
      heads.push({ path: p, entry: walkDir(base, p, p.slice(1), props, name) });
    }
    log.info(`cgroup hierarchy "${name}": ${heads.map((h) => h.path).join(', ')} and below`);
    return heads.map((h) => h.entry);
  } finally {
    hs.close();
  }
}

/**
 * Where the dump reads each hierarchy: where it is mounted in stasis's mount namespace at its
 * root, if that mount is the one its path shows (not hidden by another); else a detached
 * mount of its own (openCgroupFs), which costs 10-30 ms (cgroup2's FSCONFIG_CMD_CREATE), most
 * of a small dump.
 */
class Hierarchies {
  private mounted: Map<string, string> | undefined;
  private readonly fds = new Map<string, number>();

  /** The path of hierarchy `name`'s root; throws where it can be neither found nor opened. */
  base(name: string): string {
    const at = (this.mounted ??= mountedHierarchies()).get(name);
    if (at !== undefined) return at;
    let fd = this.fds.get(name);
    if (fd === undefined) {
      fd = openCgroupFs(name);
      this.fds.set(name, fd);
    }
    return `/proc/self/fd/${fd}`;
  }

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
    this.fds.clear();
  }
}

function walkDir(base: string, path: string, dirName: string, props: readonly string[], hierarchy: string): CgroupDirEntry {
  const dir = `${base}${path === '/' ? '' : path}`;
  const st = fs.statSync(dir);
  const properties = props.flatMap((p) => readProperty(dir, p) ?? []);
  if (hierarchy === '') {
    const type = fs.existsSync(`${dir}/cgroup.type`) ? fs.readFileSync(`${dir}/cgroup.type`, 'utf8').trim() : 'domain';
    if (type !== 'domain') throw new StasisError('E_UNSUPPORTED', `Cannot dump cgroup ${path}: its type is "${type}"; stasis cannot restore threaded cgroups`);
    if (fs.existsSync(`${dir}/cgroup.freeze`) && fs.readFileSync(`${dir}/cgroup.freeze`, 'utf8').trim() !== '0') {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump cgroup ${path}: it is frozen (cgroup.freeze), which stasis does not restore`);
    }
  }
  // v1's freezer: a frozen cgroup would come back thawed.
  const freezer = `${dir}/freezer.state`;
  if (hierarchy.split(',').includes('freezer') && fs.existsSync(freezer) && fs.readFileSync(freezer, 'utf8').trim() !== 'THAWED') {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump cgroup ${path} of the freezer hierarchy: it is ${fs.readFileSync(freezer, 'utf8').trim()}, which stasis does not restore`);
  }
  const children = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()
    .map((n) => walkDir(base, `${path === '/' ? '' : path}/${n}`, n, props, hierarchy));
  return create(CgroupDirEntrySchema, { dirName, children, properties, dirPerms: permsOf(st) });
}

/**
 * Before the tree is frozen: a task in a frozen cgroup (v2's cgroup.freeze, v1's freezer)
 * would never stop for ptrace, and would come back thawed; refused while nothing is touched.
 */
export function refuseFrozenCgroups(root: number): void {
  const pids: number[] = [];
  const visit = (p: number) => {
    pids.push(p);
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return; // gone
    }
    for (const t of tids) {
      let kids = '';
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const c of kids.split(' ').filter(Boolean)) visit(Number(c));
    }
  };
  visit(root);
  const hs = new Hierarchies();
  try {
    // A hierarchy stasis cannot open (no fsopen here, no privilege) goes unchecked, as before.
    const failed = new Set<string>();
    const base = (name: string) => {
      if (failed.has(name)) return undefined;
      try {
        return hs.base(name);
      } catch {
        failed.add(name);
        return undefined;
      }
    };
    for (const p of pids) {
      let members: CgroupMember[];
      try {
        members = parseCgroupFile(fs.readFileSync(`/proc/${p}/cgroup`, 'utf8'));
      } catch {
        continue;
      }
      for (const m of members) {
        let frozen = false;
        if (m.path === '/') continue; // a root cgroup cannot be frozen (v2 has no cgroup.freeze there, v1's freezer refuses it)
        const b = m.name === '' || m.name.split(',').includes('freezer') ? base(m.name) : undefined;
        if (b === undefined) continue;
        if (m.name === '') frozen = /^frozen 1$/m.test(readOr(`${b}${m.path}/cgroup.events`));
        else frozen = !/^(THAWED)?$/.test(readOr(`${b}${m.path}/freezer.state`).trim());
        if (frozen) throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${p}: its cgroup ${m.path} (${m.name || 'v2'}) is frozen; stasis cannot freeze it by ptrace, nor restore a frozen cgroup`);
      }
    }
  } finally {
    hs.close();
  }
}

/**
 * The hierarchies mounted in stasis's mount namespace at their root (as seen from its cgroup
 * namespace, as a mount stasis made would be), by their name in /proc/PID/cgroup ('' for v2):
 * where they are mounted.
 */
function mountedHierarchies(): Map<string, string> {
  const at = new Map<string, string>();
  let mounts;
  try {
    mounts = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return at;
  }
  // The mount a path shows is the last one on it: a hierarchy hidden by a later mount is not seen there.
  const shown = (m: MountInfo) => {
    try {
      const { dev } = fs.statSync(m.mountPoint);
      return dev === ((m.dev.minor & 0xff) | (m.dev.major << 8) | ((m.dev.minor & ~0xff) << 12));
    } catch {
      return false;
    }
  };
  for (const m of mounts) {
    if (m.root !== '/') continue;
    let key: string;
    if (m.fsType === 'cgroup2') key = '';
    else if (m.fsType === 'cgroup') {
      key = m.superOptions.filter((o) => o.startsWith('name=') || !['rw', 'ro', 'noprefix', 'xattr', 'clone_children', 'cpuset_v2_mode', 'favordynmods'].includes(o) && !o.startsWith('release_agent=')).join(',');
    } else continue;
    if (!at.has(key) && shown(m)) at.set(key, m.mountPoint);
  }
  return at;
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
