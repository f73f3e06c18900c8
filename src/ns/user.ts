// User namespaces (CRIU's userns-<id>.img): a user namespace of the tree's own, a child of
// stasis's, that owns every other namespace of the tree's own (as `unshare -U` with other
// kinds makes them: the kernel makes the user namespace first). Its uid and gid maps are read
// from /proc/PID/uid_map and gid_map (stasis is in the parent, so they read as written), and
// /proc/PID/setgroups. Images hold ids as the tasks see them (CRIU's userns_uid()): the
// credentials of every thread, translated through the maps at dump, and back at restore where
// stasis compares or sets ids from outside.
//
// Restore makes the namespace first and writes its maps from outside (stasis has CAP_SETUID
// and CAP_SETGID over it, so any map of ids it has may be written, once, in one write), before
// any task of it acts; the other namespaces are made inside it, so it owns them.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { CLONE_NEWUSER, nsOwnerInode, nsParentInode, userNsOwnerUid } from '../sys/index.js';
import { writeImage, readImage } from '../image/index.js';
import { UsernsEntrySchema, type UidGidExtent, type UsernsEntry } from '../image/gen/stasis/userns_pb.js';
import { parseStatus } from '../proc/index.js';
import { StasisError } from '../errors.js';
import type { NsKind } from './ns-kind.js';

import type { IdView } from './ns-kind.js';

export type { IdView } from './ns-kind.js';

export const SAME_IDS: IdView = { uid: (u) => u, gid: (g) => g };

type Extent = Pick<UidGidExtent, 'first' | 'lowerFirst' | 'count'>;

/** The lines of /proc/PID/uid_map or gid_map. */
export function parseIdMap(text: string): Extent[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [first, lowerFirst, count] = l.split(/\s+/).map(Number);
    return { first: first!, lowerFirst: lowerFirst!, count: count! };
  });
}

function through(map: Extent[], id: number, up: boolean): number | undefined {
  for (const e of map) {
    const from = up ? e.first : e.lowerFirst, to = up ? e.lowerFirst : e.first;
    if (id >= from && id - from < e.count) return to + (id - from);
  }
  return undefined;
}

function view(uids: Extent[], gids: Extent[], up: boolean, what: (kind: string, id: number) => string): IdView {
  const one = (map: Extent[], kind: string) => (id: number) => {
    const v = through(map, id >>> 0, up);
    if (v === undefined) throw new StasisError('E_UNSUPPORTED', what(kind, id));
    return v;
  };
  return { uid: one(uids, 'uid'), gid: one(gids, 'gid') };
}

/** Host ids (stasis's view) to the namespace's, for the dump. */
export function innerIds(e: { uidMap: Extent[]; gidMap: Extent[] }): IdView {
  return view(e.uidMap, e.gidMap, false, (kind, id) => `${kind} ${id} has no ${kind} in the tree's user namespace, so the tasks there do not see it; stasis cannot dump it`);
}

/** The namespace's ids to stasis's, at restore. */
export function hostIds(e: { uidMap: Extent[]; gidMap: Extent[] }): IdView {
  return view(e.uidMap, e.gidMap, true, (kind, id) => `Cannot restore ${kind} ${id} of the tree's user namespace: its map does not hold it`);
}

const read = (pid: number, f: string) => fs.readFileSync(`/proc/${pid}/${f}`, 'utf8');

/** The maps and setgroups of the user namespace of `pid`. */
export function readUserns(pid: number): UsernsEntry {
  return create(UsernsEntrySchema, {
    uidMap: parseIdMap(read(pid, 'uid_map')), gidMap: parseIdMap(read(pid, 'gid_map')),
    setgroupsDeny: read(pid, 'setgroups').trim() === 'deny',
  });
}

/** The kinds (their /proc/PID/ns names) whose namespace of the tree's own the user namespace must own. */
const OWNED = ['pid', 'net', 'ipc', 'uts', 'cgroup', 'time', 'mnt'] as const;

function groupsOf(pid: number, tid: number): string {
  try {
    return parseStatus(read(pid, `task/${tid}/status`)).groups.join(',');
  } catch {
    return ''; // a zombie, or gone
  }
}

/** A new user namespace's limits (/proc/sys/user/max_*, its ucounts): INT_MAX each. */
const FRESH_LIMIT = '2147483647';

/**
 * The namespace's own limits (user.max_* sysctls, read from inside it by a child entering it:
 * a multi-threaded stasis cannot setns into a user namespace) that differ from a new one's, in
 * words; undefined when none do. No image keeps them.
 */
function changedLimits(pid: number): string | undefined {
  const r = spawnSync('nsenter', ['-t', String(pid), '-U', '--preserve-credentials', 'sh', '-c', 'grep . /proc/sys/user/*'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
  if (r.error || r.status !== 0) return `stasis cannot read its limits (/proc/sys/user inside it: nsenter ${r.error?.message ?? r.stderr.trim()})`;
  const changed = r.stdout.split('\n').filter(Boolean).map((l) => /^\/proc\/sys\/user\/(\S+):(.*)$/.exec(l)).filter((m) => m && m[2] !== FRESH_LIMIT);
  if (!changed.length) return undefined;
  return `it has limits of its own (${changed.map((m) => `user.${m![1]} = ${m![2]}`).join(', ')}), which stasis does not restore yet`;
}

/** What of the user namespace of `pid` (the root of `tree`) stasis cannot give back, or undefined. */
function check(pid: number, tree: number[]): string | undefined {
  const path = `/proc/${pid}/ns/user`;
  const ino = fs.statSync(path).ino;
  if (nsParentInode(path) !== fs.statSync('/proc/self/ns/user').ino) return 'it is not a child of stasis\'s user namespace; stasis restores one level';
  const owner = userNsOwnerUid(path), euid = process.geteuid?.() ?? 0;
  if (owner !== euid) return `it was made by uid ${owner}, and stasis (uid ${euid}) would make it as its own`;
  const own = (k: string) => fs.readlinkSync(`/proc/${pid}/ns/${k}`) !== fs.readlinkSync(`/proc/self/ns/${k}`);
  for (const k of OWNED) {
    let mine: boolean;
    try {
      mine = own(k);
    } catch {
      continue; // a kernel without this kind
    }
    if (!mine) continue;
    const by = nsOwnerInode(`/proc/${pid}/ns/${k}`);
    if (by !== ino) return `the tree's ${k} namespace is owned by another user namespace (${by === undefined ? 'one stasis cannot see' : `user:[${by}]`}); stasis restores a tree whose namespaces are all owned by its user namespace`;
  }
  const limits = changedLimits(pid);
  if (limits) return limits;
  const e = readUserns(pid);
  if (!e.uidMap.length || !e.gidMap.length) return `its ${e.uidMap.length ? 'gid' : 'uid'} map is not written yet`;
  // Without a pid namespace of the tree's own, the tasks enter the user namespace once the tree
  // is built (making a pid of stasis's namespace needs privileges there): threads, made later
  // with clone3(set_tid), could not be made at their tids from inside.
  if (!own('pid')) {
    const threaded = tree.find((p) => {
      try {
        return fs.readdirSync(`/proc/${p}/task`).length > 1;
      } catch {
        return false;
      }
    });
    if (threaded !== undefined) return `pid ${threaded} has threads, and the tree has no pid namespace of its own: stasis restores threads in a user namespace only inside a pid namespace of the tree's (unshare -U -p)`;
  }
  // With setgroups denied, no task can set its supplementary groups: each must have stasis's.
  if (e.setgroupsDeny) {
    const mine = groupsOf(process.pid, process.pid);
    for (const p of tree) {
      let tids: string[];
      try {
        tids = fs.readdirSync(`/proc/${p}/task`);
      } catch {
        continue;
      }
      for (const t of tids) {
        const g = groupsOf(p, Number(t));
        if (g !== mine && g !== '') return `thread ${t} of pid ${p} has supplementary groups ${g}, stasis ${mine || 'none'}, and the namespace denies setgroups (/proc/PID/setgroups), so it could not get them back`;
      }
    }
  }
  return undefined;
}

export const userNs = {
  name: 'user',
  flag: CLONE_NEWUSER,
  check,
  dump: (ctx, pid, id) => {
    const e = readUserns(pid);
    const show = (m: Extent[]) => m.map((x) => `${x.first} ${x.lowerFirst} ${x.count}`).join(', ');
    ctx.log.info(`user namespace ${id}: uid map ${show(e.uidMap)}; gid map ${show(e.gidMap)}; setgroups ${e.setgroupsDeny ? 'deny' : 'allow'}`);
    ctx.note(writeImage(ctx.imagesDir, 'userns', id, [e]));
  },
  restore: (ctx, hostPid, id) => {
    const e = readUsernsImage(ctx.imagesDir, id);
    // "deny" can only be written before gid_map is; each map takes one write of all its lines.
    if (e.setgroupsDeny) fs.writeFileSync(`/proc/${hostPid}/setgroups`, 'deny');
    const text = (m: Extent[]) => m.map((x) => `${x.first} ${x.lowerFirst} ${x.count}\n`).join('');
    try {
      fs.writeFileSync(`/proc/${hostPid}/uid_map`, text(e.uidMap));
      fs.writeFileSync(`/proc/${hostPid}/gid_map`, text(e.gidMap));
    } catch (err) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot write the id maps of user namespace ${id}: ${(err as Error).message}`);
    }
  },
} satisfies NsKind;

export function readUsernsImage(imagesDir: string, id: number): UsernsEntry {
  const e = readImage(imagesDir, 'userns', id)[0];
  if (!e) throw new StasisError('E_CORRUPT', `userns-${id}.img is empty`);
  return e;
}
