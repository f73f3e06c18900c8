// A thread's credentials put back by the thread itself (credentials are per thread, and
// raw set*id calls change the caller only), while it is still the stub's privileged copy,
// in the one order the kernel allows (CRIU's restore_creds):
//   1. supplementary groups (needs CAP_SETGID);
//   2. gids then uids, with SECBIT_NO_SETUID_FIXUP set so that leaving uid 0 keeps the caps;
//   3. the inheritable set, while CAP_SETPCAP still lets it take bits outside permitted;
//   4. ambient caps (each must be permitted and inheritable, and SECBIT_NO_CAP_AMBIENT_RAISE
//      not yet set);
//   5. the bounding set (PR_CAPBSET_DROP needs CAP_SETPCAP);
//   6. securebits (needs CAP_SETPCAP);
//   7. effective and permitted: privileges dropped last;
//   8. no_new_privs, which cannot be undone.
// Each step is skipped when the thread has that value already; the result is read back and
// compared, so a restore never runs a thread with other credentials than it was dumped with.
import fs from 'node:fs';
import { failedWith, type Injector } from '../sys/index.js';
import { parseStatus, type ProcStatus } from '../proc/index.js';
import { isFieldSet } from '@bufbuild/protobuf';
import { CredsEntrySchema, type CredsEntry } from '../image/gen/stasis/creds_pb.js';
import { StasisError } from '../errors.js';
import { lsmLabel } from '../dump/creds.js';
import { SAME_IDS, type IdView } from '../ns/index.js';

const PR_CAPBSET_DROP = 24, PR_GET_SECUREBITS = 27, PR_SET_SECUREBITS = 28, PR_SET_NO_NEW_PRIVS = 38;
const PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2, PR_CAP_AMBIENT_CLEAR_ALL = 4;
const SECBIT_NO_SETUID_FIXUP = 1 << 2;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** The two 32-bit words of a capability set, low first, as one mask. */
const mask = (w: number[]) => BigInt(w[0] ?? 0) | (BigInt(w[1] ?? 0) << 32n);

export function lastCap(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  } catch {
    return 40;
  }
}

interface Wanted {
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  groups: number[];
  inh: bigint; prm: bigint; eff: bigint; bnd: bigint; amb: bigint;
  secbits: number;
  noNewPrivs: boolean;
}

function wanted(c: CredsEntry, valid: bigint): Wanted {
  return {
    uid: [c.uid, c.euid, c.suid, c.fsuid],
    gid: [c.gid, c.egid, c.sgid, c.fsgid],
    groups: [...c.groups].sort((a, b) => a - b),
    inh: mask(c.capInh) & valid, prm: mask(c.capPrm) & valid, eff: mask(c.capEff) & valid,
    bnd: mask(c.capBnd) & valid, amb: mask(c.capAmb) & valid,
    secbits: c.secbits, noNewPrivs: (c.noNewPrivs ?? 0) !== 0,
  };
}

function ids(s: IdLike): [number, number, number, number] {
  return [s.real, s.effective, s.saved, s.fs];
}
type IdLike = ProcStatus['uid'];

function statusOf(pid: number, tid: number): ProcStatus {
  return parseStatus(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
}

const hex = (m: bigint) => `0x${m.toString(16)}`;

/** What differs between the thread's credentials and the wanted ones, in words; empty when none. */
function differences(st: ProcStatus, secbits: number, w: Wanted, valid: bigint): string[] {
  const out: string[] = [];
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same(ids(st.uid), w.uid)) out.push(`uids ${ids(st.uid).join('/')} instead of ${w.uid.join('/')}`);
  if (!same(ids(st.gid), w.gid)) out.push(`gids ${ids(st.gid).join('/')} instead of ${w.gid.join('/')}`);
  const groups = [...st.groups].sort((a, b) => a - b);
  if (!same(groups, w.groups)) out.push(`groups ${groups.join(',')} instead of ${w.groups.join(',')}`);
  const caps: [string, bigint, bigint][] = [
    ['CapInh', st.capInh, w.inh], ['CapPrm', st.capPrm, w.prm], ['CapEff', st.capEff, w.eff], ['CapBnd', st.capBnd, w.bnd],
    ['CapAmb', st.capAmb ?? 0n, w.amb],
  ];
  for (const [name, have, want] of caps) if ((have & valid) !== want) out.push(`${name} ${hex(have & valid)} instead of ${hex(want)}`);
  if (secbits !== w.secbits) out.push(`securebits ${hex(BigInt(secbits))} instead of ${hex(BigInt(w.secbits))}`);
  if ((st.noNewPrivs ?? false) !== w.noNewPrivs) out.push(`no_new_privs ${st.noNewPrivs ? 1 : 0} instead of ${w.noNewPrivs ? 1 : 0}`);
  return out;
}

/**
 * Restores the credentials of thread `inj.pid` of process `pid` (it must run injected code).
 * `host` turns the ids of the image (those of the tree's user namespace, which the thread
 * sets) into stasis's, in which /proc reads them.
 */
export function restoreCreds(inj: Injector, pid: number, c: CredsEntry, host: IdView = SAME_IDS): void {
  const tid = inj.pid;
  const last = lastCap();
  const valid = (1n << BigInt(last + 1)) - 1n;
  const w = wanted(c, valid);
  // The same, as stasis reads them.
  const wh: Wanted = {
    ...w, uid: w.uid.map((u) => host.uid(u)) as Wanted['uid'], gid: w.gid.map((g) => host.gid(g)) as Wanted['gid'],
    groups: w.groups.map((g) => host.gid(g)).sort((a, b) => a - b),
  };
  const fail = (what: string, r: bigint) => {
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the credentials of thread ${tid} of pid ${pid}: ${what} failed with ${failedWith(r)}`);
    return r;
  };
  const cur = statusOf(pid, tid);
  // What the stub has not, no call can give back.
  const beyond: [string, bigint][] = [['bounding', w.bnd & ~cur.capBnd], ['permitted', w.prm & ~cur.capPrm]];
  for (const [set, extra] of beyond) {
    if (extra) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore thread ${tid} of pid ${pid}: its ${set} capabilities ${hex(extra)} are not in stasis's own`);
    }
  }
  inj.resetScratch();
  const capset = (eff: bigint, prm: bigint, inh: bigint) => {
    const hdr = Buffer.alloc(8);
    hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
    const data = Buffer.alloc(24);
    [eff, prm, inh].forEach((m, i) => {
      data.writeUInt32LE(Number(m & 0xffffffffn), i * 4);
      data.writeUInt32LE(Number(m >> 32n), 12 + i * 4);
    });
    fail('capset', inj.call('capset', inj.put(hdr), inj.put(data)));
  };

  // 1. Supplementary groups.
  const have = [...cur.groups].sort((a, b) => a - b);
  if (have.length !== wh.groups.length || have.some((g, i) => g !== wh.groups[i])) {
    const list = Buffer.alloc(Math.max(4, w.groups.length * 4));
    w.groups.forEach((g, i) => list.writeUInt32LE(g, i * 4));
    fail('setgroups', inj.call('setgroups', w.groups.length, inj.put(list)));
  }
  // 2. Ids, gids first (setresgid needs CAP_SETGID, kept by the fixup bit either way).
  const [uid, euid, suid, fsuid] = w.uid, [gid, egid, sgid, fsgid] = w.gid;
  const curUid = ids(cur.uid), curGid = ids(cur.gid);
  if (curUid.some((x, i) => x !== wh.uid[i]) || curGid.some((x, i) => x !== wh.gid[i])) {
    const bits = fail('PR_GET_SECUREBITS', inj.call('prctl', PR_GET_SECUREBITS, 0, 0, 0, 0));
    fail('PR_SET_SECUREBITS', inj.call('prctl', PR_SET_SECUREBITS, Number(bits) | SECBIT_NO_SETUID_FIXUP, 0, 0, 0));
    fail('setresgid', inj.call('setresgid', gid, egid, sgid));
    inj.call('setfsgid', fsgid); // returns the previous fsgid, never an error: checked below
    fail('setresuid', inj.call('setresuid', uid, euid, suid));
    inj.call('setfsuid', fsuid);
  }
  // 3. Inheritable, with everything else as it is now.
  const now = statusOf(pid, tid);
  capset(now.capEff, now.capPrm, w.inh);
  // 4. Ambient.
  fail('PR_CAP_AMBIENT_CLEAR_ALL', inj.call('prctl', PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
  const caps = [...Array(last + 1).keys()];
  const raise = caps.filter((cap) => w.amb & (1n << BigInt(cap)));
  inj.callMany(raise.map((cap) => ['prctl', [PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0]] as const))
    .forEach((r, i) => fail(`raising ambient capability ${raise[i]}`, r));
  // 5. Bounding set: a container drops most of it, one call per capability, in one stop.
  const drop = caps.filter((cap) => now.capBnd & (1n << BigInt(cap)) && !(w.bnd & (1n << BigInt(cap))));
  inj.callMany(drop.map((cap) => ['prctl', [PR_CAPBSET_DROP, cap, 0, 0, 0]] as const))
    .forEach((r, i) => fail(`PR_CAPBSET_DROP ${drop[i]}`, r));
  // 6. Securebits.
  const bits = Number(fail('PR_GET_SECUREBITS', inj.call('prctl', PR_GET_SECUREBITS, 0, 0, 0, 0)));
  if (bits !== w.secbits) fail('PR_SET_SECUREBITS', inj.call('prctl', PR_SET_SECUREBITS, w.secbits, 0, 0, 0));
  // 7. Effective and permitted.
  capset(w.eff, w.prm, w.inh);
  // 8. no_new_privs.
  if (w.noNewPrivs) fail('PR_SET_NO_NEW_PRIVS', inj.call('prctl', PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));

  const got = Number(fail('PR_GET_SECUREBITS', inj.call('prctl', PR_GET_SECUREBITS, 0, 0, 0, 0)));
  const wrong = differences(statusOf(pid, tid), got, wh, valid);
  // stasis sets no LSM label: the thread has the stub's, which must be the dumped one.
  const label = lsmLabel(`/proc/${pid}/task/${tid}/attr/current`);
  if (isFieldSet(c, CredsEntrySchema.field.lsmProfile) && label !== c.lsmProfile) wrong.push(`LSM label ${JSON.stringify(label ?? '')} instead of ${JSON.stringify(c.lsmProfile)}`);
  if (wrong.length) {
    throw new StasisError('E_RESTORE_FAILED', `Cannot restore the credentials of thread ${tid} of pid ${pid}: it has ${wrong.join(', ')}`);
  }
}
