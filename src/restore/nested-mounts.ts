// The restore's side of a tree's mount namespaces below its root's (ns/mnt-nested.ts makes
// them): the helper of each, cloned by the root with a pid no task of the tree has (so the
// tree's own clone3(set_tid) never meets it), kept while the tree is made (its files are
// opened through its /proc/PID/root, its tasks enter its namespace through a pidfd of it), then
// killed and reaped by the root, still a stub, before the root becomes itself.
import fs from 'node:fs';
import { Injector, kill, waitPid, CLONE_NEWNS } from '../sys/index.js';
import { readImage } from '../image/index.js';
import { StasisError } from '../errors.js';
import { nestedMntIds, type MadeMntNs, type NestedMntRestore } from '../ns/mnt-nested.js';
import { cloneWithPid, killHelpers, type NewTask } from './create-task.js';
import { drainSignals } from './task-internals.js';
import type { ImageSet } from './read-images.js';

export class NestedMounts {
  readonly ids: number[];
  private readonly helpers: MadeMntNs[] = [];
  /** The namespace of each mount of a nested namespace, by its id in the images. */
  private readonly nsOfMount = new Map<number, number>();
  private readonly rootMntNs: number | undefined;

  constructor(private readonly set: ImageSet) {
    const root = set.tasks.find((t) => t.pstree.pid === set.order[0]!.pid);
    this.rootMntNs = root?.ids.mntNsId;
    this.ids = nestedMntIds(this.rootMntNs, set.tasks.map((t) => t.ids.mntNsId));
    for (const id of this.ids) for (const e of readImage(set.dir, 'mountpoints', id)) this.nsOfMount.set(e.mntId, id);
  }

  /** What the root's mount restore needs to make them; `root` is the restored root, still a stub. */
  restoreCtx(root: NewTask, reserved: ReadonlySet<number> = new Set()): NestedMntRestore {
    // (`reserved`: pids other helpers took, nested-nets.ts's.)
    const used = new Set([...this.set.order.flatMap((e) => [e.pid, e.pgid, e.sid, ...e.threads]), ...reserved]);
    let next = Math.max(...used) + 1;
    // In the tree's pid namespace any number it does not use is free; in stasis's, one no process has.
    const free = () => {
      while (used.has(next) || (root.stasisPidfd === undefined && fs.existsSync(`/proc/${next}`))) next++;
      return next++;
    };
    return {
      ids: this.ids,
      clone: (inj: Injector) => {
        const vpid = free();
        const t = cloneWithPid(inj, vpid, CLONE_NEWNS, root);
        return { hostPid: t.pid, vpid, code: t.code };
      },
      made: (ns) => this.helpers.push(ns),
    };
  }

  /** Where the files on mount `mntId` of a nested namespace are opened from (its helper's root). */
  rootOf(mntId: number): string | undefined {
    const ns = this.nsOfMount.get(mntId);
    const h = ns === undefined ? undefined : this.helpers.find((x) => x.id === ns);
    return h ? `/proc/${h.hostPid}/root` : undefined;
  }

  /** The task whose mount namespace task `pid` (of the images) enters: its pid as the tree sees it, and stasis's. */
  enterOf(pid: number, root: NewTask): { vpid: number; hostPid: number } | undefined {
    const ns = this.set.tasks.find((t) => t.pstree.pid === pid)?.ids.mntNsId;
    if (ns === undefined) return undefined;
    if (ns === this.rootMntNs) return { vpid: this.set.order[0]!.pid, hostPid: root.pid };
    const h = this.helpers.find((x) => x.id === ns);
    if (!h) throw new StasisError('E_RESTORE_FAILED', `Cannot restore pid ${pid}: its mnt namespace ${ns} was not made`);
    return { vpid: h.vpid, hostPid: h.hostPid };
  }

  /** Once the tree is made and its files open: the helpers die, and the root reaps them. */
  end(root: NewTask): void {
    if (!this.helpers.length) return;
    const inj = new Injector(root.pid, { code: root.code, codeInPlace: true });
    try {
      for (const h of this.helpers.splice(0)) {
        kill(h.hostPid, 9);
        waitPid(h.hostPid); // its tracer is told first
        const got = inj.call('wait4', h.vpid, 0, 0, 0);
        if (got !== BigInt(h.vpid)) throw new StasisError('E_RESTORE_FAILED', `The root could not reap the helper ${h.vpid} of mnt namespace ${h.id}: ${got}`);
      }
      drainSignals(inj);
    } finally {
      inj.end();
    }
  }

  /** A failed restore: the helpers die with the tree. */
  abort(): void {
    killHelpers(this.helpers.splice(0).map((h) => h.hostPid));
  }
}
