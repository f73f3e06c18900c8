// Building the tree before any task is rebuilt. Every task starts as a copy of the stub:
// the root is cloned from a throwaway stub with CLONE_PARENT (a child of stasis); every
// other task is cloned by its parent's copy with clone3(set_tid), so pids and parentage
// come back exact. Sessions and groups are set while tasks are still stubs, in an order
// that makes them possible: a session leader calls setsid before it clones its children
// (they inherit the session), group leaders make their group before the members join it.
// Zombies are cloned like the others, then made to exit with their status.
import { Injector, setRegs, getRegs, setSigmask, detach } from '../sys/index.js';
import type { PstreeEntry } from '../image/gen/stasis/pstree_pb.js';
import { StasisError } from '../errors.js';
import { createRootTask, cloneWithPid, type NewTask } from './create-task.js';
import type { ImageSet } from './read-images.js';

const SYS_EXIT_GROUP = 231n, SYS_KILL = 62n;

function check(inj: Injector, what: string, r: bigint): void {
  if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot ${what} in pid ${inj.pid}: errno ${-r}`);
}

/** Creates every task of the set; `created` is filled as it goes, for cleanup on failure. */
export function createTree(set: ImageSet, created: Map<number, NewTask>): void {
  const order = set.order;
  const zombies = new Map(set.zombies.map((z) => [z.pstree.pid, z.status]));
  const root = order[0]!;
  created.set(root.pid, createRootTask(root.pid));
  const pgidOf = new Map<number, number>();

  for (const e of order) {
    if (zombies.has(e.pid)) continue;
    const me = created.get(e.pid)!;
    const inj = new Injector(me.pid, { code: me.code, codeInPlace: true });
    try {
      if (e.sid === e.pid) check(inj, 'setsid', inj.call('setsid'));
      else if (e.pgid === e.pid) check(inj, 'setpgid', inj.call('setpgid', 0, 0));
      pgidOf.set(e.pid, Number(inj.call('getpgid', 0)));
      for (const c of order.filter((x) => x.ppid === e.pid && x !== root)) {
        const parentSid = e.sid;
        if (c.sid !== parentSid && c.sid !== c.pid) {
          throw new StasisError('E_UNSUPPORTED', `Pid ${c.pid} is in session ${c.sid}, whose leader is gone; not supported yet`);
        }
        created.set(c.pid, cloneWithPid(inj, c.pid, 0));
      }
    } finally {
      inj.end();
    }
  }
  joinGroups(order, created, zombies, pgidOf);
  for (const [pid, status] of zombies) makeZombie(created.get(pid)!, status);
}

/** Members join groups led by another task of the tree (inherited groups need nothing). */
function joinGroups(order: PstreeEntry[], created: Map<number, NewTask>, zombies: Map<number, number>, pgidOf: Map<number, number>): void {
  const inTree = new Set(order.map((e) => e.pid));
  for (const e of order) {
    if (zombies.has(e.pid) || e.pgid === e.pid || !inTree.has(e.pgid)) continue;
    if (pgidOf.get(e.pid) === e.pgid) continue;
    const me = created.get(e.pid)!;
    const inj = new Injector(me.pid, { code: me.code, codeInPlace: true });
    try {
      check(inj, `join process group ${e.pgid}`, inj.call('setpgid', 0, e.pgid));
    } finally {
      inj.end();
    }
  }
}

/** Lets a fresh task end as the zombie did: exit_group(code), or killed by its signal. */
function makeZombie(t: NewTask, status: number): void {
  const r = getRegs(t.pid);
  const sig = status & 0x7f;
  if (sig) Object.assign(r, { rip: t.code, rax: SYS_KILL, rdi: BigInt(t.pid), rsi: BigInt(sig) });
  else Object.assign(r, { rip: t.code, rax: SYS_EXIT_GROUP, rdi: BigInt((status >> 8) & 0xff) });
  r.orig_rax = BigInt.asUintN(64, -1n);
  setRegs(t.pid, r);
  setSigmask(t.pid, 0n);
  detach(t.pid);
}
