// Seccomp, per thread as the kernel keeps it: the mode (/proc status), and in filter mode
// every filter of the thread's chain (PTRACE_SECCOMP_GET_FILTER: index 0 is the first
// installed) with its flags. seccomp.img holds each chain newest first, as CRIU writes it: a
// thread's core names its oldest filter, whose prev names the next one installed, and so on.
//
// The kernel shares filters between threads (SECCOMP_FILTER_FLAG_TSYNC) and across fork,
// and does not say so. As CRIU does: when every thread of a process has the same chain, it
// is written once, the leader's, with SECCOMP_FILTER_FLAG_TSYNC, so that the restore syncs
// the threads to it and a later TSYNC of the program still works; other chains are
// written per thread (equal programs behave the same).
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { getSeccompFilter, SyscallError } from '../sys/index.js';
import { parseStatus } from '../proc/index.js';
import { SeccompMode, type CoreEntry } from '../image/gen/stasis/core_pb.js';
import { SeccompEntrySchema, SeccompFilterSchema, type SeccompEntry } from '../image/gen/stasis/seccomp_pb.js';
import { StasisError } from '../errors.js';

export const SECCOMP_FILTER_FLAG_TSYNC = 1;

export interface ThreadSeccomp {
  mode: number;
  /** Filter mode: the chain, oldest (first installed) first. */
  filters: { filter: Buffer; flags: number }[];
}

export function readSeccomp(pid: number, tid: number): ThreadSeccomp {
  const mode = parseStatus(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')).seccomp ?? 0;
  const filters: ThreadSeccomp['filters'] = [];
  if (mode !== SeccompMode.filter) return { mode, filters };
  try {
    for (let i = 0; ; i++) {
      const f = getSeccompFilter(tid, i);
      if (!f) break;
      filters.push(f);
    }
  } catch (e) {
    if (e instanceof SyscallError) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid} of pid ${pid}: its seccomp filters cannot be read (${e.code}: PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN and CONFIG_CHECKPOINT_RESTORE)`, { cause: e });
    }
    throw e;
  }
  if (!filters.length) throw new StasisError('E_DUMP_FAILED', `Thread ${tid} of pid ${pid} is in seccomp filter mode without a filter`);
  for (const f of filters) {
    const why = notifyingFilter(f.filter);
    if (why) throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid} of pid ${pid}: a seccomp filter of it ${why}; its listener would be gone after a restore, and those syscalls fail with ENOSYS`);
  }
  return { mode, filters };
}

const BPF_RET_K = 0x06, BPF_RET_A = 0x16, SECCOMP_RET_ACTION_FULL = 0xffff0000, SECCOMP_RET_USER_NOTIF = 0x7fc00000;

/**
 * Why a classic BPF program may hand syscalls to a user-space listener
 * (SECCOMP_RET_USER_NOTIF), or null: a `ret K` of that action, or a `ret A`, whose action
 * is computed and cannot be told.
 */
export function notifyingFilter(prog: Buffer): string | null {
  for (let at = 0; at + 8 <= prog.length; at += 8) {
    const code = prog.readUInt16LE(at);
    if (code === BPF_RET_K && ((prog.readUInt32LE(at + 4) & SECCOMP_RET_ACTION_FULL) >>> 0) === SECCOMP_RET_USER_NOTIF) return 'returns SECCOMP_RET_USER_NOTIF';
    if (code === BPF_RET_A) return 'returns a computed action (ret A), which may be SECCOMP_RET_USER_NOTIF';
  }
  return null;
}

const same = (a: ThreadSeccomp['filters'], b: ThreadSeccomp['filters']) =>
  a.length === b.length && a.every((f, i) => f.flags === b[i]!.flags && f.filter.equals(b[i]!.filter));

/**
 * Sets seccomp_mode and seccomp_filter in every thread core (each task's cores, leader
 * first) and returns seccomp.img's entry, or undefined where no thread has a filter.
 */
export function seccompImage(tasks: { cores: { core: CoreEntry; seccomp: ThreadSeccomp }[] }[]): SeccompEntry | undefined {
  const out = create(SeccompEntrySchema, {});
  for (const t of tasks) {
    const leader = t.cores[0]!.seccomp;
    const tsync = t.cores.length > 1 && leader.mode === SeccompMode.filter && t.cores.every((c) => c.seccomp.mode === leader.mode && same(c.seccomp.filters, leader.filters));
    let leaderTop = -1;
    for (const [i, c] of t.cores.entries()) {
      const th = c.core.threadCore!;
      if (c.seccomp.mode === SeccompMode.disabled) continue;
      th.seccompMode = c.seccomp.mode;
      if (c.seccomp.mode !== SeccompMode.filter) continue;
      if (tsync && i > 0) {
        th.seccompFilter = leaderTop;
        continue;
      }
      let prev: number | undefined;
      for (const f of [...c.seccomp.filters].reverse()) {
        // prev: the filter installed after this one (written just before it).
        out.seccompFilters.push(create(SeccompFilterSchema, {
          filter: f.filter, flags: f.flags | (tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0), ...(prev !== undefined ? { prev } : {}),
        }));
        prev = out.seccompFilters.length - 1;
      }
      th.seccompFilter = prev!;
      if (i === 0) leaderTop = prev!;
    }
  }
  return out.seccompFilters.length ? out : undefined;
}
