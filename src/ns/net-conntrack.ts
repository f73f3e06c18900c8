// The connection tracking entries of a network namespace of the tree's own. A new namespace
// starts with an empty table, and a connection the kernel picks up again mid-stream
// (nf_conntrack_tcp_loose) is not the same: its first packet is NEW to the rules (`ct state
// established` drops it), its window scaling is lost (it becomes "liberal"), its mark and
// timeout start again. So, as CRIU does (criu/net.c dump_nf_ct, netns-ct-<id>.img), the entries
// are dumped through ctnetlink and made again through it before the tree's sockets exist,
// and every one is read back: it must be in the same TCP state with the same status bits,
// window scales, TCP flags and mark, its timeout as it was (the time the tree spent dumped
// aside). Only what ctnetlink can set exactly is kept: ESTABLISHED TCP entries of the tree's
// own connections, not NATed, in zone 0, without helper, labels, sequence adjustment,
// synproxy, counters (nf_conntrack_acct) or timestamps; no expectations. Anything else is refused
// at dump, and in CRIU's images at restore (before the tree runs). The images are CRIU's:
// netns-ct-<id>.img, the entries' ctnetlink messages end to end as the kernel sent them, and
// netns-exp-<id>.img for the expectations, which stasis writes empty. CRIU 4.2 asks for the
// expectations with the conntrack subsystem's number ((NFNL_SUBSYS_CTNETLINK << 8) |
// IPCTNL_MSG_EXP_GET is IPCTNL_MSG_CT_GET, criu/net.c dump_nf_ct), so its netns-exp holds the
// entries a second time, which its restore sends again as updates of the same entries. Such a
// copy is taken only if it is the same table as netns-ct; real expectations are refused.
import fs from 'node:fs';
import path from 'node:path';
import { conntrackCreate, conntrackEntries, conntrackExpectations, holdsExpectations, parseConntrackMessages, SyscallError, CTA, type CtEntry, type CtTuple } from '../sys/index.js';
import { parseNetSockets } from '../proc/net-sockets.js';
import { StasisError } from '../errors.js';

const IPS_SEEN_REPLY = 0x2, IPS_ASSURED = 0x4, IPS_CONFIRMED = 0x8;
const KEPT_STATUS = IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED;
const STATUS_NAMES: Record<number, string> = {
  0x1: 'EXPECTED', 0x10: 'SRC_NAT', 0x20: 'DST_NAT', 0x40: 'SEQ_ADJUST', 0x80: 'SRC_NAT_DONE', 0x100: 'DST_NAT_DONE', 0x200: 'DYING',
  0x400: 'FIXED_TIMEOUT', 0x800: 'TEMPLATE', 0x1000: 'NAT_CLASH', 0x2000: 'HELPER', 0x4000: 'OFFLOAD', 0x8000: 'HW_OFFLOAD',
};
const REFUSED_ATTRS: Record<number, string> = {
  [CTA.HELP]: 'a helper', [CTA.NAT_SRC]: 'source NAT', [CTA.NAT_DST]: 'destination NAT', [CTA.TUPLE_MASTER]: 'a master connection',
  [CTA.SEQ_ADJ_ORIG]: 'sequence adjustment', [CTA.SEQ_ADJ_REPLY]: 'sequence adjustment', [CTA.LABELS]: 'labels', [CTA.SYNPROXY]: 'synproxy state',
  [CTA.COUNTERS_ORIG]: 'counters (nf_conntrack_acct), which ctnetlink cannot set', [CTA.TIMESTAMP]: 'a start time (nf_conntrack_timestamp), which ctnetlink cannot set',
  [CTA.SECCTX]: 'a security context',
};
const CR_NLMSG_SEQ = 24680;
const TCP_CONNTRACK_ESTABLISHED = 3, TCP_ESTABLISHED = 1, IPPROTO_TCP = 6;

export const conntrackFile = (id: number) => `netns-ct-${id}.img`;
const expectFile = (id: number) => `netns-exp-${id}.img`;

export interface ConntrackState {
  entries: CtEntry[];
  expectations: number;
}

/** This thread's namespace's table; empty where the kernel has no connection tracking (nf_conntrack, its netlink side, not loaded). */
export function readConntrack(): ConntrackState {
  try {
    return { entries: conntrackEntries(), expectations: conntrackExpectations() };
  } catch (err) {
    if (err instanceof SyscallError && ['EPROTONOSUPPORT', 'EOPNOTSUPP', 'ENOENT'].includes(err.code)) return { entries: [], expectations: 0 };
    throw new StasisError('E_DUMP_FAILED', `Cannot read the connection tracking table of the network namespace: ${(err as Error).message}`);
  }
}

function addrText(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  if (b.length === 4) return [...b].join('.');
  return `[${Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':')}]`;
}
export const describeTuple = (t: CtTuple) => `${addrText(t.src)}:${t.sport} -> ${addrText(t.dst)}:${t.dport}`;

/** The tuples (src, sport, dst, dport as conntrack keys them) of the ESTABLISHED TCP connections of the tree's tasks, from the root's view of its namespace. */
function treeConnections(root: number, tree: number[]): Set<string> {
  const inodes = new Set<number>();
  for (const p of tree) {
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${p}/fd`);
    } catch {
      continue; // a zombie
    }
    for (const fd of fds) {
      const m = /^socket:\[(\d+)\]$/.exec((() => { try { return fs.readlinkSync(`/proc/${p}/fd/${fd}`); } catch { return ''; } })());
      if (m) inodes.add(Number(m[1]));
    }
  }
  const bytes = (words: number[]) => {
    const b = Buffer.alloc(4 * words.length);
    words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
    // An IPv4-mapped address is IPv4 on the wire, and to conntrack.
    return b.length === 16 && b.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex')) ? b.subarray(12) : b;
  };
  const out = new Set<string>();
  for (const t of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${root}/net/${t}`, 'utf8');
    } catch {
      continue;
    }
    for (const s of parseNetSockets(text, `net/${t}`)) {
      if (s.state !== TCP_ESTABLISHED || !inodes.has(s.ino)) continue;
      out.add(`${bytes(s.localAddr).toString('hex')}:${s.localPort}>${bytes(s.remoteAddr).toString('hex')}:${s.remotePort}`);
    }
  }
  return out;
}

const key = (t: CtTuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
const inverse = (a: CtTuple, b: CtTuple) => a.src === b.dst && a.dst === b.src && a.sport === b.dport && a.dport === b.sport && a.proto === b.proto;

/** Why entry `e` cannot be made again exactly, or undefined; `conns`: the tree's connections (unknown at restore). */
function entryRefusal(e: CtEntry, conns?: Set<string>): string | undefined {
  if (e.orig.proto !== IPPROTO_TCP) return `it is of protocol ${e.orig.proto}, and stasis restores only TCP entries`;
  const odd = Object.entries(STATUS_NAMES).filter(([bit]) => e.status & Number(bit)).map(([, n]) => n);
  if (odd.length || e.status & ~0xffff & ~KEPT_STATUS) return `it has status ${odd.join(', ') || `0x${e.status.toString(16)}`}`;
  const attr = e.attrs.find((a) => REFUSED_ATTRS[a]);
  if (attr !== undefined) return `it has ${REFUSED_ATTRS[attr]}`;
  if (e.zone) return `it is in zone ${e.zone}`;
  if (!inverse(e.orig, e.reply)) return `its reply goes ${describeTuple(e.reply)} (translated)`;
  if (e.tcp?.state !== TCP_CONNTRACK_ESTABLISHED) return `it is in TCP state ${e.tcp?.state ?? '?'}, and stasis restores only ESTABLISHED entries`;
  if (conns && !conns.has(key(e.orig)) && !conns.has(key(e.reply))) return 'it is not a connection of a socket of the tree';
  return undefined;
}

/** Why the table of the namespace of `root` cannot be restored, or undefined. */
export function conntrackRefusal(ct: ConntrackState, root: number, tree: number[]): string | undefined {
  if (ct.expectations) return `its connection tracking table has ${ct.expectations} expectation(s), which stasis cannot restore`;
  if (!ct.entries.length) return undefined;
  const conns = treeConnections(root, tree);
  for (const e of ct.entries) {
    const why = entryRefusal(e, conns);
    if (why) return `its connection tracking entry ${describeTuple(e.orig)} cannot be restored: ${why}`;
  }
  return undefined;
}

/** Writes CRIU's netns-ct and netns-exp images of namespace `id`; their paths. */
export function writeConntrack(dir: string, id: number, ct: ConntrackState): string[] {
  const files = [path.join(dir, conntrackFile(id)), path.join(dir, expectFile(id))];
  // CRIU sends each message back as it is and waits for the answer of its own sequence number (CR_NLMSG_SEQ).
  const msgs = ct.entries.map((e) => {
    const m = Buffer.from(e.msg);
    m.writeUInt32LE(CR_NLMSG_SEQ, 8);
    return m;
  });
  fs.writeFileSync(files[0]!, Buffer.concat(msgs), { mode: 0o600 });
  fs.writeFileSync(files[1]!, '', { mode: 0o600 });
  return files;
}

/** How entry `n` differs from `e` in what stasis restores (`e` one it restores), or undefined; `n`'s timeout may have run down by 30 s. */
function entryDiff(e: CtEntry, n: CtEntry): string | undefined {
  const t = e.tcp, u = n.tcp;
  return !inverse(n.orig, n.reply) || key(n.reply) !== key(e.reply) ? `its reply is ${describeTuple(n.reply)}`
    : n.status !== e.status ? `its status is 0x${n.status.toString(16)}, was 0x${e.status.toString(16)}`
    : n.mark !== e.mark ? `its mark is ${n.mark}, was ${e.mark}`
    : !t || !u || u.state !== t.state || u.wscaleOrig !== t.wscaleOrig || u.wscaleReply !== t.wscaleReply || u.flagsOrig !== t.flagsOrig || u.flagsReply !== t.flagsReply
      ? `its TCP state is ${JSON.stringify(u)}, was ${JSON.stringify(t)}`
    : n.timeout > e.timeout || n.timeout < e.timeout - 30 ? `its timeout is ${n.timeout} s, was ${e.timeout} s`
    : undefined;
}

/** Why `copy` (CRIU 4.2's netns-exp: the table dumped again just after) is not the table of `entries`, or undefined. */
function copyDiffers(entries: CtEntry[], copy: CtEntry[]): string | undefined {
  const left = new Map(copy.map((c) => [key(c.orig), c]));
  if (left.size !== copy.length) return 'it holds an entry twice';
  for (const e of entries) {
    const c = left.get(key(e.orig));
    if (!c) return `it lacks entry ${describeTuple(e.orig)}`;
    left.delete(key(e.orig));
    const why = entryRefusal(c) ?? (c.family !== e.family || c.zone !== e.zone || c.attrs.join() !== e.attrs.join() ? 'it has other attributes' : entryDiff(e, c));
    if (why) return `its entry ${describeTuple(e.orig)} differs: ${why}`;
  }
  const [extra] = left.values();
  return extra && `it has entry ${describeTuple(extra.orig)}, which the first lacks`;
}

/** The entries of namespace `id`'s images (none without them: older images); what cannot be made again exactly is refused. */
export function readConntrackFile(dir: string, id: number): CtEntry[] {
  const read = (f: string) => {
    try {
      return fs.readFileSync(path.join(dir, f));
    } catch {
      return Buffer.alloc(0);
    }
  };
  // netns-ct holds entries only (a message of another kind is damage); netns-exp may hold expectations.
  const parse = (f: string, expectations: boolean) => {
    const b = read(f);
    try {
      return expectations && holdsExpectations(b) ? { expectations, entries: [] } : { expectations: false, entries: parseConntrackMessages(b) };
    } catch (err) {
      throw new StasisError('E_CORRUPT', `${f} cannot be read: ${(err as Error).message}`);
    }
  };
  const { entries } = parse(conntrackFile(id), false), exp = parse(expectFile(id), true);
  for (const e of entries) {
    const why = entryRefusal(e);
    if (why) throw new StasisError('E_UNSUPPORTED', `Cannot restore connection tracking entry ${describeTuple(e.orig)} of network namespace ${id}: ${why}`);
  }
  if (exp.expectations) throw new StasisError('E_UNSUPPORTED', `Cannot restore network namespace ${id}: ${expectFile(id)} holds conntrack expectations, which stasis cannot restore`);
  const why = copyDiffers(entries, exp.entries);
  if (exp.entries.length && why) {
    throw new StasisError('E_UNSUPPORTED', `Cannot restore network namespace ${id}: ${expectFile(id)} holds connection tracking entries (as CRIU 4.2 writes it) that are not the table of ${conntrackFile(id)}: ${why}`);
  }
  return entries;
}

/** Makes `entries` again in this thread's namespace, and reads each back: it must be as it was. */
export function restoreConntrack(entries: CtEntry[], what: string): void {
  for (const e of entries) {
    try {
      conntrackCreate(e);
    } catch (err) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore connection tracking entry ${describeTuple(e.orig)} of ${what}: ${(err as Error).message}`);
    }
  }
  if (!entries.length) return;
  const now = new Map(conntrackEntries().map((e) => [key(e.orig), e]));
  for (const e of entries) {
    const n = now.get(key(e.orig));
    // An entry that was restored has only status bits of KEPT_STATUS (entryRefusal): the same status is those bits.
    const diff = n ? entryDiff(e, n) : 'it is missing';
    if (diff) throw new StasisError('E_RESTORE_FAILED', `Connection tracking entry ${describeTuple(e.orig)} of ${what} was restored differently: ${diff}`);
  }
}
