// The network lock (CRIU's criu/netfilter.c): while a connection is in repair mode, and from
// the dump that kills its tree until the restore that brings it back, no packet of it may
// reach the peer or the host's stack, or one side answers with a reset. Each connection is
// locked by its 4-tuple, in both directions, in stasis's network namespace, or in the tree's
// own one when it has one (which dies with the tree: nothing is left to unlock at restore, and
// the restore locks the connections again in the new one until the tree runs):
// - iptables: two DROP rules per connection in the filter table's INPUT and OUTPUT chains,
//   CRIU's very rules (`-m mark ! --mark 0xC114 -s .. --sport .. -d .. --dport .. -j DROP`),
//   so that either tool removes what the other added; ip6tables for IPv6, IPv4 rules for
//   IPv4-mapped addresses;
// - nftables: a table `inet CRIU-<pid>` (the dumped root's pid) whose input and output chains
//   drop the 4-tuples of its sets conns4 and conns6; unlocking deletes the table;
// - skip: nothing (whoever runs stasis keeps the peers quiet).
// Packets marked 0xC114 (SOCCR_MARK: the segments stasis hands a socket itself) pass.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { StasisError } from '../errors.js';
import type { Log } from '../log.js';
import { AF_INET, AF_INET6, CLONE_NEWNET, inNamespace } from '../sys/index.js';

export type LockMethod = 'iptables' | 'nftables' | 'skip';
/** CRIU's inventory values for network_lock_method. */
export const LOCK_METHOD_CODES: Record<LockMethod, number> = { iptables: 0, nftables: 1, skip: 2 };
export const SOCCR_MARK = 0xc114;

/** One connection, as its socket sees it: its own end first. */
export interface Conn {
  family: number;
  src: readonly number[];
  srcPort: number;
  dst: readonly number[];
  dstPort: number;
}

function addrText(family: number, words: readonly number[]): string {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  if (family === AF_INET) return [...b].join('.');
  return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
}

/** IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 on the wire. */
function wireForm(c: Conn): { v: 4 | 6; src: string; dst: string } {
  const mapped = (a: readonly number[]) => a.length === 4 && a[0] === 0 && a[1] === 0 && (a[2]! >>> 0) === 0xffff0000;
  if (c.family === AF_INET6 && mapped(c.dst)) return { v: 4, src: addrText(AF_INET, [c.src[3]!]), dst: addrText(AF_INET, [c.dst[3]!]) };
  if (c.family !== AF_INET && c.family !== AF_INET6) throw new StasisError('E_UNSUPPORTED', `Cannot lock a connection of family ${c.family}`);
  return { v: c.family === AF_INET ? 4 : 6, src: addrText(c.family, c.src), dst: addrText(c.family, c.dst) };
}

export function describeConn(c: Conn): string {
  const w = wireForm(c);
  const at = (a: string, p: number) => (w.v === 6 ? `[${a}]:${p}` : `${a}:${p}`);
  return `${at(w.src, c.srcPort)} - ${at(w.dst, c.dstPort)}`;
}

/** The program's path: root's PATH may lack /usr/sbin. */
function tool(name: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (!dir) continue;
    const p = `${dir}/${name}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new StasisError('E_UNSUPPORTED', `The network lock needs ${name}, which is not installed (Debian: apt-get install ${name.startsWith('nft') ? 'nftables' : 'iptables'}); or choose another with --network-lock iptables|nftables|skip`);
}

/** `fn` with this thread in network namespace `netns` (a child spawned meanwhile is born in it), or where it is. */
function spawnWhere<T>(netns: string | undefined, fn: () => T): T {
  return netns ? inNamespace(netns, 'net', CLONE_NEWNET, fn) : fn();
}

function toolOrUndefined(name: string): string | undefined {
  try {
    return tool(name);
  } catch {
    return undefined;
  }
}

function run(name: string, args: string[], input: string, log: Log, netns?: string): { ok: boolean; err: string } {
  const path = tool(name);
  const r = spawnWhere(netns, () => spawnSync(path, args, { input, encoding: 'utf8', timeout: 30_000 }));
  const err = `${r.error?.message ?? ''}${r.stderr ?? ''}`.trim();
  log.debug(`network lock: ${name} ${args.join(' ')}${input ? ` <<${input.trim().replace(/\n/g, '; ')}` : ''}: ${r.status === 0 ? 'ok' : `exit ${r.status}: ${err}`}`);
  return { ok: r.status === 0, err };
}

/** The iptables-restore input that adds (-I) or deletes (-D) the two rules of a connection. */
export function iptablesRules(c: Conn, op: '-I' | '-D'): { prog: string; text: string } {
  const w = wireForm(c);
  const rule = (chain: string, s: string, sp: number, d: string, dp: number) =>
    `${op} ${chain} -p tcp -m mark ! --mark 0x${SOCCR_MARK.toString(16).toUpperCase()} -s ${s} --sport ${sp} -d ${d} --dport ${dp} -j DROP`;
  return {
    prog: w.v === 4 ? 'iptables-restore' : 'ip6tables-restore',
    text: `*filter\n${rule('INPUT', w.dst, c.dstPort, w.src, c.srcPort)}\n${rule('OUTPUT', w.src, c.srcPort, w.dst, c.dstPort)}\nCOMMIT\n`,
  };
}

/** The (ip6)tables-restore lines that add (-I: ahead of every rule) or delete (-D) the rules accepting marked packets in INPUT and OUTPUT. */
export function passMarkedRules(op: '-I' | '-D'): string {
  const rule = (chain: string) => `${op} ${chain} -m mark --mark 0x${SOCCR_MARK.toString(16).toUpperCase()} -j ACCEPT`;
  return `${rule('INPUT')}\n${rule('OUTPUT')}\n`;
}

/** The nftables table of a dump: its root's pid, or for CRIU's images CRIU's run id (cut as CRIU cuts it). */
export function nftTableName(rootPid: number, criuRunId?: string): string {
  const name = criuRunId ? `inet CRIU-${criuRunId}` : `inet CRIU-${rootPid}`;
  return name.slice(0, 31);
}

export class NetworkLock {
  private readonly locked: Conn[] = [];
  private tableMade = false;
  /**
   * What of nf_tables an iptables of the nft kind made for the lock's rules (`ip filter` and its
   * INPUT and OUTPUT chains, when they were not there), by family: taken away again, once empty,
   * when the lock is undone, so that a tree left running has the rules it had.
   */
  private madeByIptables = new Map<'ip' | 'ip6', string[] | undefined>();
  /** The network namespace the lock is put in (a file of it), when it is not stasis's: the tree's own. */
  netns: string | undefined;
  /**
   * iptables: marked packets are accepted ahead of every rule, as CRIU's lock of a namespace
   * does (network_lock_internal's CRIU chain), so that a rule of the namespace's own that drops
   * a connection's port does not drop what stasis hands its socket (zdtm socket-tcp-closed-last-ack
   * drops the port the peer's FIN goes to). Only in the tree's new namespace: in stasis's, the
   * host's rules are not the lock's to override.
   */
  passMarked = false;
  /** The programs (iptables-restore, ip6tables-restore) that added passMarkedRules(). */
  private readonly passing = new Set<string>();

  constructor(readonly method: LockMethod, private readonly table: string, private readonly log: Log) {}

  /** Locks one connection; throws, having locked nothing, when it cannot. */
  lock(c: Conn): void {
    const what = describeConn(c);
    if (this.method === 'skip') return;
    if (this.method === 'iptables') {
      const r = iptablesRules(c, '-I');
      const family = r.prog.startsWith('ip6') ? 'ip6' : 'ip';
      if (!this.madeByIptables.has(family)) this.madeByIptables.set(family, this.missingFilter(family));
      const pass = this.passMarked && !this.passing.has(r.prog);
      const res = run(r.prog, ['-w', '--noflush'], pass ? r.text.replace(/COMMIT\n$/, `${passMarkedRules('-I')}COMMIT\n`) : r.text, this.log, this.netns);
      if (!res.ok) throw new StasisError('E_DUMP_FAILED', `Cannot lock the TCP connection ${what} with ${r.prog}: ${res.err}`);
      if (pass) this.passing.add(r.prog);
    } else {
      if (!this.tableMade) this.makeTable();
      const res = run('nft', ['-f', '-'], `add element ${this.table} ${this.elements(c)}\n`, this.log, this.netns);
      if (!res.ok) throw new StasisError('E_DUMP_FAILED', `Cannot lock the TCP connection ${what} with nft: ${res.err}`);
    }
    this.locked.push(c);
    this.log.info(`network lock (${this.method}): locked ${what}`);
  }

  /** Unlocks what this lock locked (a dump that failed, or left its tree running; a restore into the tree's new namespace). */
  unlockOwn(): void {
    if (this.method === 'nftables') {
      if (this.tableMade) this.dropTable();
    } else if (this.method === 'iptables') {
      for (const c of this.locked) this.unlockIptables(c);
      for (const prog of this.passing) {
        const res = run(prog, ['-w', '--noflush'], `*filter\n${passMarkedRules('-D')}COMMIT\n`, this.log, this.netns);
        if (!res.ok) this.log.warn(`network lock (iptables): cannot delete the rules accepting marked packets with ${prog}: ${res.err}`);
      }
      this.passing.clear();
      for (const [family, made] of this.madeByIptables) if (made?.length) this.dropIfEmpty(family, made);
      this.madeByIptables.clear();
    }
    this.locked.length = 0;
    this.tableMade = false;
  }

  /** Unlocks the connections of an image set (a restore): every one, whatever fails. */
  unlockAll(conns: readonly Conn[]): void {
    if (this.method === 'nftables') this.dropTable();
    else if (this.method === 'iptables') for (const c of conns) this.unlockIptables(c);
  }

  get count(): number {
    return this.locked.length;
  }

  /** What of `family filter`'s table, INPUT and OUTPUT chains nf_tables lacks now; undefined where iptables is not of the nft kind or nft is missing. */
  private missingFilter(family: 'ip' | 'ip6'): string[] | undefined {
    const v = spawnSync(toolOrUndefined(family === 'ip' ? 'iptables-restore' : 'ip6tables-restore') ?? 'false', ['--version'], { encoding: 'utf8' });
    if (!/nf_tables/.test(v.stdout ?? '') || !toolOrUndefined('nft')) return undefined;
    if (!run('nft', ['list', 'table', family, 'filter'], '', this.log, this.netns).ok) return ['table'];
    return ['INPUT', 'OUTPUT'].filter((ch) => !run('nft', ['list', 'chain', family, 'filter', ch], '', this.log, this.netns).ok);
  }

  /** Deletes the table or chains the lock's iptables made (`made`), if no rule is left in them. */
  private dropIfEmpty(family: 'ip' | 'ip6', made: string[]): void {
    for (const what of made) {
      const obj = what === 'table' ? ['table', family, 'filter'] : ['chain', family, 'filter', what];
      const r = spawnWhere(this.netns, () => spawnSync(tool('nft'), ['list', ...obj], { encoding: 'utf8' }));
      if (r.status !== 0) continue;
      // A rule is a line inside a chain that is not its type line; an empty base chain has none.
      const rules = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l && !/^(table|chain) .*\{$|^type .*;$|^\}$/.test(l));
      if (rules.length) {
        this.log.warn(`network lock (iptables): ${obj.join(' ')} was made for the lock but now holds rules: left as it is`);
        continue;
      }
      const res = run('nft', ['delete', ...obj], '', this.log, this.netns);
      if (res.ok) this.log.info(`network lock (iptables): deleted ${obj.join(' ')}, made for the lock`);
    }
  }

  private unlockIptables(c: Conn): void {
    const r = iptablesRules(c, '-D');
    const res = run(r.prog, ['-w', '--noflush'], r.text, this.log, this.netns);
    if (res.ok) this.log.info(`network lock (iptables): unlocked ${describeConn(c)}`);
    else this.log.warn(`network lock (iptables): cannot unlock ${describeConn(c)}: ${res.err}`);
  }

  private elements(c: Conn): string {
    const w = wireForm(c);
    return `conns${w.v} { ${w.src} . ${c.srcPort} . ${w.dst} . ${c.dstPort}, ${w.dst} . ${c.dstPort} . ${w.src} . ${c.srcPort} }`;
  }

  private makeTable(): void {
    const t = this.table;
    if (run('nft', ['list', 'table', ...t.split(' ')], '', this.log, this.netns).ok) {
      this.tableMade = true; // made by an earlier dump of this pid whose tree was never restored
      return;
    }
    const script = [
      `add table ${t}`,
      `add chain ${t} output { type filter hook output priority 0; }`,
      `add rule ${t} output meta mark 0x${SOCCR_MARK.toString(16)} accept`,
      `add chain ${t} input { type filter hook input priority 0; }`,
      `add rule ${t} input meta mark 0x${SOCCR_MARK.toString(16)} accept`,
      `add set ${t} conns4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }`,
      `add rule ${t} output ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop`,
      `add rule ${t} input ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop`,
      `add set ${t} conns6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }`,
      `add rule ${t} output ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop`,
      `add rule ${t} input ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop`,
    ].join('\n');
    const res = run('nft', ['-f', '-'], `${script}\n`, this.log, this.netns);
    if (!res.ok) throw new StasisError('E_DUMP_FAILED', `Cannot make the nftables table ${t} of the network lock: ${res.err}`);
    this.tableMade = true;
  }

  private dropTable(): void {
    const res = run('nft', ['delete', 'table', ...this.table.split(' ')], '', this.log, this.netns);
    if (res.ok) this.log.info(`network lock (nftables): deleted table ${this.table}`);
    else this.log.warn(`network lock (nftables): cannot delete table ${this.table}: ${res.err}`);
  }
}
