// A thread's credentials as CRIU's CredsEntry holds them (ThreadCoreEntry.creds), from its
// /proc status: CRIU's restore requires them in every core. Capability sets are two 32-bit
// words, low first (CRIU's CR_CAP_SIZE). With an LSM, the thread's label too: stasis cannot
// set one, so a thread labelled otherwise than stasis itself is refused.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { CredsEntrySchema, type CredsEntry } from '../image/gen/stasis/creds_pb.js';
import type { ProcStatus } from '../proc/index.js';
import { StasisError } from '../errors.js';

const words = (m: bigint) => [Number(m & 0xffffffffn), Number((m >> 32n) & 0xffffffffn)];

/** The LSM label of a task (/proc/.../attr/current), or undefined without an LSM (EINVAL). */
export function lsmLabel(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8').replace(/[\0\n]+$/, '');
  } catch {
    return undefined;
  }
}

export function credsOf(st: ProcStatus, secbits: number, lsm?: string): CredsEntry {
  return create(CredsEntrySchema, {
    uid: st.uid.real, euid: st.uid.effective, suid: st.uid.saved, fsuid: st.uid.fs,
    gid: st.gid.real, egid: st.gid.effective, sgid: st.gid.saved, fsgid: st.gid.fs,
    capInh: words(st.capInh), capPrm: words(st.capPrm), capEff: words(st.capEff), capBnd: words(st.capBnd),
    ...(st.capAmb !== undefined ? { capAmb: words(st.capAmb) } : {}),
    ...(st.noNewPrivs ? { noNewPrivs: 1 } : {}),
    ...(lsm !== undefined ? { lsmProfile: lsm } : {}),
    secbits, groups: st.groups,
  });
}

/** The thread's LSM label, refused unless it is stasis's own (the only one a restore gives). */
export function checkLsm(pid: number, tid: number): string | undefined {
  const label = lsmLabel(`/proc/${pid}/task/${tid}/attr/current`);
  const own = lsmLabel('/proc/self/attr/current');
  if (label !== undefined && label !== own) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump thread ${tid} of pid ${pid}: its LSM label ${JSON.stringify(label)} differs from stasis's ${JSON.stringify(own ?? '')}; stasis cannot restore LSM profiles yet`);
  }
  return label;
}

/** The process's loginuid; refused when its threads differ (the image holds one per process). */
export function readLoginuid(pid: number, tids: number[]): number | undefined {
  const of = (tid: number) => {
    try {
      return Number(fs.readFileSync(`/proc/${pid}/task/${tid}/loginuid`, 'utf8'));
    } catch {
      return undefined; // a kernel without audit
    }
  };
  const v = of(pid);
  for (const tid of tids) {
    const t = of(tid);
    if (t !== v) throw new StasisError('E_UNSUPPORTED', `Cannot dump pid ${pid}: its thread ${tid} has loginuid ${t}, the leader ${v}; stasis keeps one per process`);
  }
  return v;
}
