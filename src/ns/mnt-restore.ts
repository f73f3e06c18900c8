// Restoring a mount namespace (CRIU's prepare_mnt_ns, done the mount-v1 way): the restored
// root, just made with CLONE_NEWNS (a copy of stasis's mounts), makes everything private so
// nothing propagates back, builds the image's mounts (in mountOrder()'s order: parents first,
// a mount before a sibling that covers its path) under a directory of its own (the yard): the
// root as a bind of --root, fresh filesystems mounted by itself (proc of its own pid
// namespace, sysfs of its network namespace, mqueue of its IPC namespace), tmpfs files put
// back from their archive before anything is mounted on it, binds of mounts made already,
// external mounts cloned from the host path --ext-mount-map gives their name (in stasis's
// namespace, open_tree, and moved into the task's: a slave of a host peer group stays one),
// filesystems of devices --external dev[] names, each reached through an fd held on the mount
// it goes on; then sets each mount's flags (read-only, nosuid, ...), pivots into the yard and
// drops the old tree, sets the propagation of the tree's own peer groups (mnt-sharing.ts), and
// checks every mount's place, propagation and the roots of those made anew against the image.
// stasis then opens the tree's files through /proc/ROOT/root, which leads into the new tree.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { untarTree } from './tar-lite.js';
import { spawnSync } from 'node:child_process';
import { Injector, failedWith, cloneMount, closeFd, setMountGroup } from '../sys/index.js';
import { readImage, imagePath } from '../image/index.js';
import type { MntEntry } from '../image/gen/stasis/mnt_pb.js';
import type { MountInfo } from '../proc/mountinfo.js';
import { StasisError } from '../errors.js';
import type { NsRestoreCtx } from './ns-kind.js';
import { planMounts, mountName, FSTYPE, type ExtNames, type MountPlan } from './mnt.js';
import { AUTO_KEY, externalPath, mountIdOfFd, propagationDiffers } from './mnt-external.js';
import { restoreNestedMnt, type HeldClone } from './mnt-nested.js';
import { MS_PROPAGATION, MS_SHARED, MS_UNBINDABLE, joinedHere, mountAttr, planPeers, restoreSharing, slavedHere, type CrossGroup } from './mnt-sharing.js';
import { parseMountinfo } from '../proc/mountinfo.js';

const O_PATH = 0o10000000, O_CLOEXEC = 0o2000000, AT_FDCWD = -100, OPEN_TREE_CLONE = 1, MOVE_MOUNT_F_EMPTY_PATH = 4, MOVE_MOUNT_T_SYMLINKS = 0x10;
const MS_RDONLY = 0x1, MS_REMOUNT = 0x20, MS_BIND = 0x1000, MS_REC = 0x4000, MS_PRIVATE = 0x40000, MS_SLAVE = 0x80000, MNT_DETACH = 2, AT_EMPTY_PATH = 0x1000;
// The superblock flags an image keeps, passed to a fresh mount (their MS_* values are the SB_* ones).
const SB_MASK = 0x1 | 0x10 | 0x40 | 0x80 | 0x2000000;

// (Built on first use: mnt.ts and this file import each other.)
let fsNames: Map<number, string> | undefined;
const fsName = (t: number) => (fsNames ??= new Map(Object.entries(FSTYPE).map(([k, v]) => [v, k]))).get(t);

/** An image entry as mountinfo would show it: what planMounts() reads. */
export function asMountInfo(e: MntEntry): MountInfo {
  return {
    mountId: e.mntId, parentId: e.parentMntId, dev: { major: e.rootDev >>> 20, minor: e.rootDev & 0xfffff }, root: e.root,
    mountPoint: e.mountpoint, mountOptions: [], optionalFields: [], unbindable: (e.flags & MS_UNBINDABLE) !== 0, fsType: fsName(e.fstype) ?? `fstype ${e.fstype}`,
    source: e.source, superOptions: e.options ? e.options.split(',') : [],
    ...(e.sharedId ? { shared: e.sharedId } : {}), ...(e.masterId ? { master: e.masterId } : {}),
  };
}

export function restoreMounts(ctx: NsRestoreCtx, hostPid: number, id: number): void {
  // (The image keeps them in the reverse of mountinfo's order, the order they were made in.)
  const image = readImage(ctx.imagesDir, 'mountpoints', id).reverse();
  const byId = new Map(image.map((e) => [e.mntId, e]));
  const archive = (e: MntEntry) => imagePath(ctx.imagesDir, 'tmpfs-dev', e.rootDev);
  // The image's names of external mounts are its keys here: --ext-mount-map NAME:HOSTPATH.
  // A nested namespace's binds of the root namespace's mounts come as external ones (mnt-nested.ts), and its root is made as any mount.
  const outer = ctx.outerBinds;
  const extNames: ExtNames = outer ? (m) => outer.get(m.mountId)?.key : new Map(image.filter((e) => e.extKey).map((e) => [e.mountpoint, e.extKey!] as const));
  // The root's restore plans the peer groups that span the tree's namespaces, for all of them.
  const peers = ctx.peers ?? (ctx.nestedMnt ? { cross: crossOfImages(ctx.imagesDir, [id, ...ctx.nestedMnt.ids]), fds: new Map(), taskFds: new Map() } : undefined);
  const joined = peers ? joinedHere(peers.cross, String(id)) : undefined;
  const slaved = peers ? slavedHere(peers.cross, String(id)) : new Set<number>();
  // (Left private until the end: the mounts joined to or made from another namespace's group; those of them this task makes slaves.)
  const later = (e: MntEntry) => joined?.has(e.sharedId) || slaved.has(e.mntId);
  const slaveFirsts = peers ? peers.cross.flatMap((g) => g.slaves.filter((s) => s.ns === String(id)).map((s) => s.mntId)) : [];
  const planned = planMounts(image.map(asMountInfo), extNames, ctx.root !== undefined, (m) => (fs.existsSync(archive(byId.get(m.mountId)!)) ? 'files' : 'empty'), outer !== undefined, (m) => (m.fsType === 'auto' ? /^dev\[(.+)\]$/s.exec(m.source)?.[1] : undefined), joined);
  if ('refused' in planned) throw new StasisError('E_UNSUPPORTED', `Cannot restore mnt namespace ${id}: ${planned.refused}`);
  const entries = planned.order.map((mid) => byId.get(mid)!);
  if (ctx.rootCode === undefined) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: the root task's code is not known`);
  const yard = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-mnt-'));
  const inTask = (p: string) => `/proc/${hostPid}/root${p}`;
  // Each mount, once made, is held by an O_PATH fd of stasis's, and reached through it (from
  // stasis and from the task, whose /proc is still stasis's): a path in the yard would lead to
  // whatever was mounted over it later (zdtm tempfs_overmounted's second /a over /a/b).
  const held = new Map<number, number>();
  const heldPath = (e: MntEntry) => `/proc/${process.pid}/fd/${held.get(e.mntId)!}`;
  /** Where mount `e` goes: on its parent, through the parent's fd; the root in the yard. */
  const target = (e: MntEntry): { task: string; host: string } => {
    const p = byId.get(e.parentMntId);
    if (!p || !held.has(p.mntId)) return e.mountpoint === '/' ? { task: yard, host: inTask(yard) } : { task: `${yard}${e.mountpoint}`, host: inTask(`${yard}${e.mountpoint}`) };
    const rel = p.mountpoint === '/' ? e.mountpoint : e.mountpoint.slice(p.mountpoint.length);
    const at = `${heldPath(p)}${rel === '/' ? '' : rel}`;
    return { task: at, host: at };
  };
  const inj = new Injector(hostPid, { code: ctx.rootCode, codeInPlace: true });
  const call = (what: string, name: 'mount' | 'umount2' | 'pivot_root' | 'chdir' | 'open_tree' | 'close' | 'openat' | 'move_mount' | 'mount_setattr', ...args: (string | number | Buffer | null)[]) => {
    inj.resetScratch();
    const r = inj.call(name, ...args.map((a) => (a === null ? 0 : typeof a === 'string' ? inj.putString(a) : Buffer.isBuffer(a) ? inj.put(a) : a)));
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: ${what} failed with ${failedWith(r)}`);
    return Number(r);
  };
  const below = (c: MntEntry, top: MntEntry) => {
    for (let a = byId.get(c.parentMntId), n = 0; a && n < entries.length; a = byId.get(a.parentMntId), n++) if (a.mntId === top.mntId) return true;
    return false;
  };
  try {
    call('making the copied mounts private', 'mount', 'none', '/', null, MS_REC | MS_PRIVATE, null);
    for (const e of entries) {
      const plan = planned.plans.get(e.mntId)!;
      const where = `${e.mountpoint} (mount ${e.mntId})`;
      let source = sourceOf(e, plan, ctx, byId, heldPath, id), hostSource = source;
      // A bind of what a mount made already on the mount bound covers (zdtm
      // tempfs_overmounted01's b/b/b bound on b/b): from a clone of that mount alone, which
      // the task makes (its namespace's mount) and may bind from (Linux 6.15's check_anonymous_mnt()).
      let clone: number | undefined;
      if (plan.how === 'bind') {
        const from = byId.get(plan.from)!;
        const rel = relOf(e, from), src = from.mountpoint === '/' ? rel : `${from.mountpoint}${rel}`;
        const cover = entries.find((c) => held.has(c.mntId) && c.mountpoint !== from.mountpoint && under(src, c.mountpoint) && below(c, from));
        if (cover) {
          clone = call(`cloning mount ${from.mntId} at ${from.mountpoint}, which mount ${cover.mntId} at ${cover.mountpoint} covers`, 'open_tree', AT_FDCWD, heldPath(from), OPEN_TREE_CLONE | O_CLOEXEC);
          source = `/proc/self/fd/${clone}${rel}`;
          hostSource = `/proc/${hostPid}/fd/${clone}${rel}`;
        }
      }
      const to = target(e);
      // (A source or mountpoint the file system refuses is named with its mount, not as Node's bare ENOENT.)
      const onFs = <T>(what: string, fn: () => T): T => {
        try {
          return fn();
        } catch (err) {
          throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: ${where}: ${what} failed with ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
        }
      };
      const src = () => {
        if (plan.how === 'external' && outer?.has(e.mntId)) return `the clone of ${plan.key}`;
        if (plan.how === 'external') return `${source!}, the path of the external mount ${plan.key},`;
        if (plan.how !== 'bind') return source!;
        const b = byId.get(plan.from)!;
        return `${path.posix.join(b.mountpoint, relOf(e, b) || '/')} (mount ${b.mntId}), the source of the bind,`;
      };
      // A bind of a root removed since (CRIU's deleted mount): made again for the bind, of the
      // mountpoint's kind (CRIU's detect_is_dir), and removed once bound.
      const remade = plan.how === 'bind' && e.deleted && hostSource !== undefined && !fs.existsSync(hostSource)
        ? onFs(`making the removed root ${e.root} again`, () => remakeRoot(hostSource!, fs.existsSync(to.host) ? isDir(to.host) : true)) : [];
      if (plan.how === 'bind' && plan.pty !== undefined) {
        if (!ctx.makePty) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: ${where} binds pty ${plan.pty}, and no terminal restore makes it`);
        ctx.makePty(plan.pty, `${heldPath(byId.get(plan.from)!)}/ptmx`);
      }
      if (plan.how !== 'root') makeTarget(to.host, hostSource === undefined || plan.how === 'device' ? true : onFs(`looking up ${src()}`, () => isDir(hostSource!)), (p) => onFs(`making the mountpoint ${e.mountpoint}`, p));
      if (plan.how === 'device') {
        // The device's filesystem mounted anew, as a fresh one; read-only per mount comes with the flags below.
        call(`mounting ${e.fsname ?? '?'} of ${source} at ${where}`, 'mount', source!, to.task, e.fsname ?? '', (e.flags & ~MS_RDONLY & ~MS_PROPAGATION) | (e.sbFlags & SB_MASK), e.options);
      } else if (plan.how === 'fresh') {
        const fsType = fsName(e.fstype)!;
        // Read-only per mount comes with the flags below; a read-only superblock now.
        // A read-only superblock with files is made read-only once they are in.
        const sb = e.sbFlags & SB_MASK & (plan.contents ? ~MS_RDONLY : ~0);
        call(`mounting ${fsType} at ${where}`, 'mount', e.source, to.task, fsType, (e.flags & ~MS_RDONLY & ~MS_PROPAGATION) | sb, e.options);
      } else if (plan.how === 'external' && outer?.has(e.mntId)) {
        // A nested namespace's bind of a mount of the root's: a detached clone the root holds (mnt-nested.ts), moved into place.
        const tfd = call(`opening ${src()}`, 'openat', AT_FDCWD, source!, O_PATH | O_CLOEXEC);
        call(`moving ${src()} to ${where}`, 'move_mount', tfd, '', AT_FDCWD, to.task, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS);
        call(`closing the clone of ${plan.key}`, 'close', tfd);
      } else if (plan.how === 'external') {
        // Cloned in stasis's namespace, where the path is (the task's copy of it is private), and moved into the task's.
        const fd = onFs(`cloning ${src()}`, () => cloneMount(source!));
        try {
          const tfd = call(`opening the clone of ${source}`, 'openat', AT_FDCWD, `/proc/${process.pid}/fd/${fd}`, O_PATH | O_CLOEXEC);
          // (A mount stacked on another goes on the fd of the one below, /proc/PID/fd/N: move_mount(2) follows that link only when told.)
          call(`moving the clone of ${source} to ${where}`, 'move_mount', tfd, '', AT_FDCWD, to.task, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS);
          call(`closing the clone of ${source}`, 'close', tfd);
        } finally {
          closeFd(fd);
        }
      } else {
        try {
          call(`binding ${source} at ${where}`, 'mount', source!, to.task, null, MS_BIND, null);
        } finally {
          removeRemade(remade);
        }
      }
      if (clone !== undefined) call(`closing the clone of the mount ${e.mntId} binds`, 'close', clone);
      // The path of the lowest of the mounts stacked where it is leads to it, the topmost
      // (a path ending in an fd's link would stop at the fd's own mount).
      let low = e;
      for (let p = byId.get(low.parentMntId); p && held.has(p.mntId) && p.mountpoint === low.mountpoint; p = byId.get(low.parentMntId)) low = p;
      held.set(e.mntId, onFs('holding it by an fd', () => fs.openSync(target(low).host, O_PATH | O_CLOEXEC)));
      // A clone or bind is in its source's peer group (or a slave of its master): the image's
      // propagation now, private or a slave of the host's peer group it was a slave of (checked below).
      // (A slave of the tree's own peer group is made one with the others' propagation, below.)
      // (Through its own fd: its target, a stacked mount's the fd of the one below, would change that one.)
      const hostSlave = e.masterId !== undefined && e.masterId !== 0 && !planned.sharing.groups.some((g) => g.shared === e.masterId) && !later(e);
      if (plan.how === 'external' || plan.how === 'bind') call(`making ${where} ${hostSlave ? 'a slave' : 'private'}`, 'mount', 'none', heldPath(e), null, hostSlave ? MS_SLAVE : MS_PRIVATE, null);
      // A tmpfs's files go in before anything is mounted on it, those other mounts hide too.
      if (plan.how === 'fresh' && plan.contents) extract(archive(e), heldPath(e), where);
      if (plan.how === 'fresh' && plan.contents && e.sbFlags & MS_RDONLY) call(`making the ${fsName(e.fstype)!} at ${where} read-only`, 'mount', 'none', heldPath(e), null, MS_REMOUNT | (e.sbFlags & SB_MASK), e.options);
      ctx.log.debug(`mount ${e.mntId}: ${plan.how} at ${e.mountpoint}`);
    }
    // Flags last, children before parents: a read-only parent takes no more mountpoints.
    for (const e of [...entries].reverse()) {
      const flags = e.flags & ~MS_PROPAGATION;
      call(`setting the flags 0x${flags.toString(16)} of ${e.mountpoint} (mount ${e.mntId})`, 'mount', 'none', heldPath(e), null, MS_REMOUNT | MS_BIND | flags, null);
    }
    // The task's own fds on the mounts whose propagation is set after the pivot, when
    // stasis's fds are out of its reach (its /proc is the tree's then).
    const { groups, unbindable } = planned.sharing;
    const taskFd = new Map<number, number>();
    for (const mid of [...groups.flatMap((g) => [g.first, ...g.others]), ...unbindable]) {
      taskFd.set(mid, call(`holding mount ${mid} at ${byId.get(mid)!.mountpoint} in the task`, 'openat', AT_FDCWD, heldPath(byId.get(mid)!), O_PATH | O_CLOEXEC, 0));
    }
    // (Those made slaves of another namespace's group at the end, by this task.)
    for (const mid of slaveFirsts) peers!.taskFds.set(mid, { fd: call(`holding mount ${mid} at ${byId.get(mid)!.mountpoint} in the task`, 'openat', AT_FDCWD, heldPath(byId.get(mid)!), O_PATH | O_CLOEXEC, 0), pid: hostPid, code: ctx.rootCode });
    // The nested namespaces are made (their helpers cloned from this task) while its mounts are
    // still in the yard, their binds of its mounts from clones of them this task takes through
    // stasis's fds: a clone of the mount alone (open_tree(2) of the mount the fd is on, where
    // other mounts cover it), and of the directory below its root in that clone.
    const cloneOuter = (mid: number, rel: string): HeldClone => {
      const m = byId.get(mid);
      if (!m || !held.has(mid)) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: mount ${mid}, which a nested mount namespace binds, was not made`);
      const whole = call(`cloning mount ${mid} at ${m.mountpoint} for a nested mount namespace`, 'open_tree', AT_FDCWD, heldPath(m), OPEN_TREE_CLONE | O_CLOEXEC);
      let part = whole;
      if (rel) {
        try {
          part = call(`cloning ${rel} of mount ${mid} at ${m.mountpoint} for a nested mount namespace`, 'open_tree', AT_FDCWD, `/proc/self/fd/${whole}${rel}`, OPEN_TREE_CLONE | O_CLOEXEC);
        } finally {
          call('closing a clone', 'close', whole);
        }
      }
      return { path: `/proc/${hostPid}/fd/${part}`, close: () => call('closing a clone', 'close', part) };
    };
    if (ctx.nestedMnt) restoreNestedMnt({ ...ctx, ...(peers ? { peers } : {}) }, ctx.nestedMnt, id, inj, cloneOuter);
    call(`entering ${yard}`, 'chdir', yard);
    call('pivot_root into the restored mounts', 'pivot_root', '.', '.');
    call('dropping stasis\'s mounts', 'umount2', '.', MNT_DETACH);
    call('entering the restored root', 'chdir', '/');
    // Propagation last, on the whole tree: made before, a mount would have propagated to its
    // peers, and pivot_root takes no shared root (CRIU's restore_mount_sharing_options).
    restoreSharing(planned.sharing, taskFd, (what, name, ...args) => call(what, name, ...args), (mid) => `${byId.get(mid)!.mountpoint} (mount ${mid})`);
    for (const fd of taskFd.values()) call('closing the task\'s fd on a mount', 'close', fd);
    // What was made is what the image holds (a path that led elsewhere would say nothing).
    const fresh = new Set(entries.filter((e) => ['fresh', 'device'].includes(planned.plans.get(e.mntId)!.how)).map((e) => e.mntId));
    // (The mounts of a group another namespace makes are private until they are joined to it.)
    const expected = entries.map((e) => (later(e) ? { ...e, sharedId: 0, masterId: 0, flags: e.flags & ~MS_SHARED & ~MS_SLAVE } : e));
    const why = treeCheck(expected, held, hostPid, fresh);
    if (why) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: the restored mounts are not the image's: ${why}`);
    if (peers) {
      for (const g of peers.cross) {
        const here = [...g.joins, ...g.slaves].filter((j) => j.ns === String(id));
        for (const mid of [g.ns === String(id) ? g.first : undefined, ...here.map((j) => j.mntId), ...g.slaves.filter((j) => j.ns === String(id)).flatMap((j) => j.peers ?? [])]) {
          if (mid !== undefined) peers.fds.set(mid, { fd: fs.openSync(heldPath(byId.get(mid)!), O_PATH | O_CLOEXEC), pid: hostPid });
        }
      }
      // Every namespace is made: the groups that span them are joined.
      if (ctx.nestedMnt) {
        joinPeers(peers, id, (pid: number, what: string, name: 'mount_setattr' | 'close', ...args: (number | string | Buffer)[]): number => (pid === hostPid ? call(what, name, ...args) : callInTask(pid, peers.taskFds, id, what, name, ...args)));
        ctx.log.info(`mount namespaces ${id}, ${ctx.nestedMnt.ids.join(', ')}: ${peers.cross.flatMap((g) => g.joins).length} mounts joined to ${peers.cross.length} peer groups of other namespaces, ${peers.cross.flatMap((g) => g.slaves).length} made their slaves`);
      }
    }
    ctx.log.info(`mnt namespace ${id}: ${entries.length} mounts restored (${groups.length} sharing groups, ${unbindable.length} unbindable)`);
  } finally {
    for (const fd of held.values()) fs.closeSync(fd);
    if (ctx.nestedMnt && peers) for (const { fd } of peers.fds.values()) fs.closeSync(fd);
    inj.end();
    try {
      fs.rmdirSync(yard);
    } catch {
      /* removed, or still a mountpoint in a failed restore's task (it dies with it) */
    }
  }
}

/** The peer groups that span the namespaces `ids` of the images, the root's first. */
function crossOfImages(imagesDir: string, ids: readonly number[]): CrossGroup[] {
  const cross = planPeers(ids.map((n) => ({ ns: String(n), mounts: readImage(imagesDir, 'mountpoints', n).map(asMountInfo) })), mountName);
  if ('refused' in cross) throw new StasisError('E_UNSUPPORTED', `Cannot restore the mount namespaces ${ids.join(', ')}: ${cross.refused}`);
  return cross;
}

type TaskCall = (pid: number, what: string, name: 'mount_setattr' | 'close', ...args: (number | string | Buffer)[]) => number;

/** A call by task `pid` (a nested namespace's helper, with its code in `tasks`) through an injector of its own. */
function callInTask(pid: number, tasks: ReadonlyMap<number, { pid: number; code: bigint }>, rootId: number, what: string, name: 'mount_setattr' | 'close', ...args: (number | string | Buffer)[]): number {
  const code = [...tasks.values()].find((t) => t.pid === pid)!.code;
  const inj = new Injector(pid, { code, codeInPlace: true });
  try {
    const r = inj.call(name, ...args.map((a) => (typeof a === 'string' ? inj.putString(a) : Buffer.isBuffer(a) ? inj.put(a) : a)));
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${rootId}: ${what} failed with ${failedWith(r)}`);
    return Number(r);
  } finally {
    inj.end();
  }
}

/**
 * Joins the mounts of each group that spans namespaces to its first (made shared in its own),
 * through stasis's fds on them, and its slaves in other namespaces too, each then made a slave
 * by a task of its namespace (a mount's propagation is changed from its own namespace only);
 * checks that each group is one peer group now, and its slaves its.
 */
function joinPeers(peers: NonNullable<NsRestoreCtx['peers']>, rootId: number, call: TaskCall): void {
  const { cross, fds, taskFds } = peers;
  const fail = (why: string) => new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${rootId}: ${why}`);
  const now = (mid: number) => {
    const h = fds.get(mid)!, id = mountIdOfFd(h.fd);
    return parseMountinfo(fs.readFileSync(`/proc/${h.pid}/mountinfo`, 'utf8')).find((m) => m.mountId === id);
  };
  for (const g of cross) {
    const from = fds.get(g.first);
    if (!from) throw fail(`mount ${g.first} of mount namespace ${g.ns}, the first of peer group ${g.shared}, was not made`);
    const join = (j: { ns: string; mntId: number }) => {
      const to = fds.get(j.mntId);
      if (!to) throw fail(`mount ${j.mntId} of mount namespace ${j.ns}, in peer group ${g.shared}, was not made`);
      try {
        setMountGroup(from.fd, to.fd);
      } catch (err) {
        throw fail(`joining mount ${j.mntId} of mount namespace ${j.ns} to the peer group of mount ${g.first} of mount namespace ${g.ns} failed with ${(err as Error).message}`);
      }
    };
    for (const j of g.joins) join(j);
    // A slave joins its master's group, then leaves it as its slave (do_make_slave), as in one
    // namespace; a shared one is then made shared again, and its peers join its new group.
    for (const s of g.slaves) {
      join(s);
      const t = taskFds.get(s.mntId)!;
      call(t.pid, `making mount ${s.mntId} of mount namespace ${s.ns} a slave of peer group ${g.shared}`, 'mount_setattr', t.fd, '', AT_EMPTY_PATH, mountAttr(MS_SLAVE), 32);
      if (s.shared !== undefined) call(t.pid, `making mount ${s.mntId} of mount namespace ${s.ns} shared`, 'mount_setattr', t.fd, '', AT_EMPTY_PATH, mountAttr(MS_SHARED), 32);
      call(t.pid, `closing the task's fd on mount ${s.mntId}`, 'close', t.fd);
      for (const p of s.peers ?? []) {
        try {
          setMountGroup(fds.get(s.mntId)!.fd, fds.get(p)!.fd);
        } catch (err) {
          throw fail(`copying the peer group of mount ${s.mntId} of mount namespace ${s.ns} to its mount ${p} failed with ${(err as Error).message}`);
        }
      }
    }
    const top = now(g.first), want = top?.shared;
    const off = g.joins.find((j) => { const m = now(j.mntId); return want === undefined || m?.shared !== want || m?.master !== top?.master; });
    if (off) throw fail(`mount ${off.mntId} of mount namespace ${off.ns} is not in the peer group of mount ${g.first} of mount namespace ${g.ns} once joined to it`);
    for (const s of g.slaves) {
      const m = now(s.mntId);
      const ok = m?.master === want && (s.shared === undefined ? m?.shared === undefined : m?.shared !== undefined && (s.peers ?? []).every((p) => { const o = now(p); return o?.shared === m.shared && o?.master === want; }));
      if (!ok) throw fail(`mount ${s.mntId} of mount namespace ${s.ns}${s.peers?.length ? ` (and its peers ${s.peers.join(', ')})` : ''} is not a slave of the peer group of mount ${g.first} of mount namespace ${g.ns}${s.shared !== undefined ? ', shared,' : ''} once made one`);
    }
  }
}

/**
 * Why the restored mounts (read through stasis's fds on them, `held`) are not the image's: a
 * mount on another parent or at another place, a `fresh` one showing another root of its
 * filesystem, or propagation that differs; or undefined.
 */
function treeCheck(entries: readonly MntEntry[], held: ReadonlyMap<number, number>, hostPid: number, fresh: ReadonlySet<number>): string | undefined {
  const mountinfo = fs.readFileSync(`/proc/${hostPid}/mountinfo`, 'utf8');
  const now = new Map(parseMountinfo(mountinfo).map((m) => [m.mountId, m]));
  const newId = new Map([...held].map(([mntId, fd]) => [mntId, mountIdOfFd(fd)]));
  for (const e of entries) {
    const m = now.get(newId.get(e.mntId) ?? -1);
    if (!m) return `mount ${e.mntId} at ${e.mountpoint} is not among the restored mounts`;
    const parent = newId.get(e.parentMntId);
    if (m.mountPoint !== e.mountpoint || (parent !== undefined && m.parentId !== parent)) return `mount ${e.mntId} at ${e.mountpoint} came back at ${m.mountPoint}${parent !== undefined && m.parentId !== parent ? ` on another mount than ${e.parentMntId}` : ''}`;
  }
  return propagationDiffers(entries, newId, mountinfo, fresh);
}

/** What mount `e` is made from: the host path of --root or of an external mount, or a path through the fd of the mount it binds. */
function sourceOf(e: MntEntry, plan: MountPlan, ctx: NsRestoreCtx, byId: Map<number, MntEntry>, at: (e: MntEntry) => string, id: number): string | undefined {
  switch (plan.how) {
    case 'root':
      return ctx.root!;
    case 'external': {
      const outer = ctx.outerBinds?.get(e.mntId);
      if (outer) return outer.clone();
      // (As CRIU: with auto, a name no map gives is bound from the source its entry keeps, where the dump saw it.)
      const host = ctx.extMounts?.get(plan.key) ?? (ctx.extAuto ? e.source : undefined);
      if (host === undefined) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: mount ${e.mntId} at ${e.mountpoint} is the external mount ${plan.key}, and ${plan.key === AUTO_KEY ? 'no --ext-mount-map auto (--external mnt[], RPC auto_ext_mnt) says to bind it from where the dump found it' : `no --ext-mount-map ${plan.key}:PATH (--external mnt[${plan.key}]:PATH, RPC ext_mnt) says where it is`}`);
      return externalPath(host);
    }
    case 'bind': {
      const from = byId.get(plan.from)!;
      return `${at(from)}${relOf(e, from)}`;
    }
    case 'device': {
      const dev = ctx.extDevs?.get(plan.key);
      if (dev === undefined) throw new StasisError('E_RESTORE_FAILED', `Cannot restore mnt namespace ${id}: mount ${e.mntId} at ${e.mountpoint} is the ${e.fsname ?? ''} filesystem of the device dev[${plan.key}], and no --external dev[${plan.key}]:DEVICE says which device it is`);
      return dev;
    }
    case 'fresh':
      return undefined;
  }
}

/** The path below the root of mount `from` of what bind `e` shows: '' or '/a/b'. */
function relOf(e: MntEntry, from: MntEntry): string {
  const rel = from.root === '/' ? e.root : e.root.slice(from.root.length);
  return rel === '/' ? '' : rel;
}

const under = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(`${dir}/`);

function isDir(p: string): boolean {
  return fs.statSync(p).isDirectory();
}

/** Makes `p` (a directory, or an empty file) and the directories missing above it; returns what it made, deepest first. */
function remakeRoot(p: string, dir: boolean): string[] {
  const made: string[] = [];
  for (let d = path.dirname(p); !fs.existsSync(d); d = path.dirname(d)) made.push(d);
  for (const d of [...made].reverse()) fs.mkdirSync(d, 0o700);
  if (dir) fs.mkdirSync(p, 0o600);
  else fs.closeSync(fs.openSync(p, 'wx', 0o600));
  return [p, ...made];
}

/** Removes what remakeRoot() made: the mount bound from it keeps it, as `//deleted`. */
function removeRemade(made: string[]): void {
  for (const p of made) {
    try {
      if (fs.lstatSync(p).isDirectory()) fs.rmdirSync(p);
      else fs.unlinkSync(p);
    } catch {
      /* gone already */
    }
  }
}

/** The mountpoint, made where it is missing: a directory, or an empty file for a file bound over. */
function makeTarget(p: string, dir: boolean, guard: (make: () => void) => void): void {
  if (fs.existsSync(p)) return;
  guard(() => {
    fs.mkdirSync(dir ? p : path.dirname(p), { recursive: true, mode: 0o755 });
    if (!dir) fs.closeSync(fs.openSync(p, 'wx', 0o644));
  });
}

function extract(archive: string, dir: string, where: string): void {
  // A plain archive is put back here (ns/tar-lite.ts), as tar would; anything else by tar.
  try {
    if (untarTree(fs.readFileSync(archive), dir)) return;
  } catch {
    // (What failed here fails in tar too, which says so; what was made, tar makes again.)
  }
  const r = spawnSync('tar', ['--extract', '--gzip', '--numeric-owner', '--preserve-permissions', '--directory', dir, '--file', archive], { encoding: 'utf8' });
  if (r.status !== 0) throw new StasisError('E_RESTORE_FAILED', `Cannot put back the files of the tmpfs at ${where}: tar ${r.error ? r.error.message : `exited with ${r.status}: ${r.stderr.trim()}`}`);
}
