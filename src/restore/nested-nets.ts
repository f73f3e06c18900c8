// The restore's side of a tree's network namespaces other than its root's (ns/net-nested.ts):
// the holder of each, cloned by the root (a stub still) with CLONE_NEWNET and a pid no task of
// the tree has, before any namespace is filled, so that a veth between two of them is made
// once with an end in each (CRIU's prepare_net_namespaces makes them all first too). Each is
// filled as the root's is (ns/net.ts), the tasks enter theirs as stubs, before they clone
// (create-tree.ts, setns through a pidfd of its holder, CRIU's restore_task_net_ns), its
// sockets are made in it (through the holder's /proc/PID/ns/net); then the holders are killed
// and reaped by the root before it becomes itself.
import fs from 'node:fs';
import { Injector, kill, waitPid, CLONE_NEWNET } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { NetsMade } from '../ns/net-nested.js';
import { cloneWithPid, killHelpers, type NewTask } from './create-task.js';
import { drainSignals } from './task-internals.js';
import type { ImageSet } from './read-images.js';

interface Holder {
  id: number;
  hostPid: number;
  vpid: number;
}

export class NestedNets {
  /** Their ids, in the tree's order. */
  readonly ids: number[] = [];
  private readonly holders: Holder[] = [];
  private readonly rootNetNs: number | undefined;
  private root: NewTask | undefined;
  /** The namespaces (by id) filled already: a veth's pair is made by the first of its two. */
  readonly filled = new Set<number>();

  constructor(private readonly set: ImageSet) {
    this.rootNetNs = set.tasks.find((t) => t.pstree.pid === set.order[0]!.pid)?.ids.netNsId;
    for (const t of set.tasks) {
      const n = t.ids.netNsId;
      if (n !== undefined && n !== this.rootNetNs && !this.ids.includes(n)) this.ids.push(n);
    }
  }

  /** The pids the holders took (in the tree's pid namespace): other helpers must not take them. */
  get pids(): Set<number> {
    return new Set(this.holders.map((h) => h.vpid));
  }

  /** Clones a holder of each namespace from the root, a stub still (its injector `inj`). */
  make(root: NewTask, inj: Injector): void {
    this.root = root;
    const used = new Set(this.set.order.flatMap((e) => [e.pid, e.pgid, e.sid, ...e.threads]));
    let next = Math.max(...used) + 1;
    for (const id of this.ids) {
      // In the tree's pid namespace any number it does not use is free; in stasis's, one no process has.
      while (used.has(next) || (root.stasisPidfd === undefined && fs.existsSync(`/proc/${next}`))) next++;
      const vpid = next++;
      const t = cloneWithPid(inj, vpid, CLONE_NEWNET, root);
      this.holders.push({ id, hostPid: t.pid, vpid });
    }
  }

  /** What the namespaces' restore needs: a task in each (stasis's pid) and those filled. */
  made(): NetsMade {
    return {
      pidOf: (id) => (id === this.rootNetNs ? this.root?.pid : this.holders.find((h) => h.id === id)?.hostPid),
      filled: this.filled,
    };
  }

  /** Their holders (stasis's pid), to fill each, in order. */
  each(): { id: number; hostPid: number }[] {
    return this.holders.map((h) => ({ id: h.id, hostPid: h.hostPid }));
  }

  /** A file of namespace `id`, where it is one of these (not the root's). */
  pathOf(id: number): string | undefined {
    const h = this.holders.find((x) => x.id === id);
    return h ? `/proc/${h.hostPid}/ns/net` : undefined;
  }

  /** The task whose network namespace task `pid` (of the images) enters: its pid as the tree sees it, and stasis's. */
  enterOf(pid: number, root: NewTask): { vpid: number; hostPid: number } | undefined {
    const ns = this.set.tasks.find((t) => t.pstree.pid === pid)?.ids.netNsId;
    if (ns === undefined) return undefined;
    if (ns === this.rootNetNs) return { vpid: this.set.order[0]!.pid, hostPid: root.pid };
    const h = this.holders.find((x) => x.id === ns);
    if (!h) throw new StasisError('E_RESTORE_FAILED', `Cannot restore pid ${pid}: its net namespace ${ns} was not made`);
    return { vpid: h.vpid, hostPid: h.hostPid };
  }

  /** Once the tree is made and its files open: the holders die, and the root reaps them. */
  end(root: NewTask): void {
    if (!this.holders.length) return;
    const inj = new Injector(root.pid, { code: root.code, codeInPlace: true });
    try {
      for (const h of this.holders.splice(0)) {
        kill(h.hostPid, 9);
        waitPid(h.hostPid); // its tracer is told first
        const got = inj.call('wait4', h.vpid, 0, 0, 0);
        if (got !== BigInt(h.vpid)) throw new StasisError('E_RESTORE_FAILED', `The root could not reap the holder ${h.vpid} of net namespace ${h.id}: ${got}`);
      }
      drainSignals(inj);
    } finally {
      inj.end();
    }
  }

  /** A failed restore: the holders die with the tree. */
  abort(): void {
    killHelpers(this.holders.splice(0).map((h) => h.hostPid));
  }
}
