// Pid namespaces. A tree whose root is the init (pid 1) of a pid namespace of its own is
// dumped with the pids its tasks see (CRIU's virtual pids: pstree.img and the images named by
// pid hold them), read from NSpid, NSpgid and NSsid in /proc/PID/status; a group or session
// led from outside the namespace is 0 there, as it reads inside. Restore makes the root with
// clone3(CLONE_NEWPID) and its descendants with set_tid arrays of one entry, their pid in the
// innermost namespace (the caller's). The namespace has no image of its own (CRIU writes a
// pidns image only for an external one).
import fs from 'node:fs';
import { CLONE_NEWPID } from '../sys/index.js';
import { parseStatus } from '../proc/index.js';
import type { NsKind } from './ns-kind.js';

/** The pids of the tree's pid namespace, for the host pids of its tasks. */
export interface PidView {
  /** The pid `hostPid` has in the tree's namespace (the same in stasis's). */
  pid(hostPid: number): number;
  /** Its process group and session there (0: led from outside it). */
  pgidSid(hostPid: number): { pgid: number; sid: number } | undefined;
}

export const SAME_PIDS: PidView = { pid: (p) => p, pgidSid: () => undefined };

const last = (l: number[] | undefined) => (l && l.length ? l[l.length - 1]! : 0);

/** Reads every pid through NSpid (the innermost level, the tree's). */
export function innerPids(): PidView {
  const status = (p: number) => parseStatus(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
  const cache = new Map<number, number>();
  return {
    pid: (p) => {
      let v = cache.get(p);
      if (v === undefined) cache.set(p, (v = last(status(p).nsPid)));
      return v;
    },
    pgidSid: (p) => {
      const s = status(p);
      return { pgid: last(s.nsPgid), sid: last(s.nsSid) };
    },
  };
}

export const pidNs = {
  name: 'pid',
  flag: CLONE_NEWPID,
  check: (pid) => {
    const nsPid = parseStatus(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).nsPid ?? [];
    const mine = parseStatus(fs.readFileSync('/proc/self/status', 'utf8')).nsPid ?? [];
    if (nsPid.length !== mine.length + 1) return `it is ${nsPid.length - mine.length} pid namespaces below stasis's; stasis restores one level`;
    if (last(nsPid) !== 1) return `it is pid ${last(nsPid)} there, not the namespace's init; stasis restores a pid namespace from its init`;
    return undefined;
  },
  dump: () => {},
  restore: () => {},
} satisfies NsKind;
