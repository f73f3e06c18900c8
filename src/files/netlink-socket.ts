// Netlink sockets (CRIU's NetlinkSkEntry inside files.img).
//
// Dump: sock_diag's netlink dump gives a bound socket's protocol, port id, groups, the port id
// and group it is connected to, its NETLINK_* flags and the memory its queue holds; a socket
// it does not list was never bound (connect() and sendmsg() bind): its protocol comes from the
// socket itself. Refused, naming pid, fd and why: messages queued, a dump in progress, groups
// above 32, the NETLINK_* options CRIU's image has no room for, protocols whose kernel side
// keeps state of its own per socket, sockets of a network namespace other than stasis's or the
// tree's own (whose sockets are looked at from within it, and made in the new one), signal-driven I/O.
//
// Restore: socket(), bind() at the same port id with the same groups, connect() where it was,
// then the socket options and status flags.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { NetlinkSkEntrySchema, type NetlinkSkEntry } from '../image/gen/stasis/sk-netlink_pb.js';
import {
  bindNetlink, closeFd, connectNetlink, getsockoptInt, netlinkSockets, netnsCookie, pidfdGetfd, pidfdOpen, socket,
  AF_NETLINK, NDIAG_FLAG, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK, SOL_SOCKET, SO_PROTOCOL, SO_TYPE,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe } from './kind.js';
import { emptyFown } from './reg.js';
import { commonOpts, familySocketKind, ownerRefusal } from './sk-opts.js';
import { dumpStep, failure } from './fail.js';

const NETLINK_CONNECTED = 1;

/**
 * The protocols whose whole state of a socket is its port id, groups and options. The others
 * keep per-socket state in the kernel that no diag reports (audit's registered daemon,
 * nfnetlink queue and log bindings, the connector's listeners count, ...).
 */
const PROTOCOLS: Record<number, string> = {
  0: 'NETLINK_ROUTE', 4: 'NETLINK_SOCK_DIAG', 6: 'NETLINK_XFRM', 10: 'NETLINK_FIB_LOOKUP', 15: 'NETLINK_KOBJECT_UEVENT',
  16: 'NETLINK_GENERIC', 21: 'NETLINK_CRYPTO',
};

/** The group bitmask as the image keeps it: the words up to the last one set. */
function groupWords(groups: readonly number[]): number[] {
  let n = groups.length;
  while (n > 0 && groups[n - 1] === 0) n--;
  return groups.slice(0, n);
}

function dumpSocket(p: FdProbe, ctx: DumpFileCtx, id: number): FileEntry {
  const ino = Number(p.stat.ino);
  const what = `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const refuse = (why: string) => new StasisError('E_UNSUPPORTED', `Cannot dump ${what} ${why}`);
  const pidfd = pidfdOpen(p.pid);
  let taken = -1, mine = -1;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    // sock_diag answers for the namespace its socket is of: stasis's, or the tree's own
    // (dumped with it); a socket of any other would look unbound there.
    mine = ctx.tcp.inNetns(() => socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0));
    if (netnsCookie(taken) !== netnsCookie(mine)) throw refuse(`is a netlink socket of another network namespace than ${ctx.tcp.netns ? 'the tree\'s own' : 'stasis\'s'}, not supported yet`);
    const owner = ownerRefusal(taken, p.info.flags);
    if (owner) throw refuse(owner);
    const protocol = getsockoptInt(taken, SOL_SOCKET, SO_PROTOCOL), type = getsockoptInt(taken, SOL_SOCKET, SO_TYPE);
    const proto = PROTOCOLS[protocol];
    // SOCK_DGRAM works as SOCK_RAW does for netlink, but SO_TYPE tells them apart and the image has no type.
    if (type !== SOCK_RAW) throw refuse(`is a netlink socket of type ${type}, not SOCK_RAW, which the image cannot hold, not supported yet`);
    if (!proto) throw refuse(`is a netlink socket of protocol ${protocol}, whose kernel side keeps state stasis cannot read, not supported yet`);
    const d = ctx.tcp.inNetns(() => netlinkSockets()).get(ino);
    const kind = `a ${proto} socket${d?.portid ? ` bound to port ${d.portid}` : ''}`;
    if (d) {
      if (d.rmemAlloc > 0) throw refuse(`is ${kind} with messages queued (${d.rmemAlloc} bytes), which cannot be queued again, not supported yet`);
      if (d.flags & NDIAG_FLAG.CB_RUNNING) throw refuse(`is ${kind} with a dump in progress, whose kernel state cannot be read, not supported`);
      const opts = d.flags & ~NDIAG_FLAG.CB_RUNNING;
      if (opts) throw refuse(`is ${kind} with NETLINK_* options set (diag flags 0x${opts.toString(16)}), which the image cannot hold, not supported yet`);
      if (groupWords(d.groups).length > 1) throw refuse(`is ${kind} listening on groups above 32, not supported yet`);
    }
    for (const [opt, name] of [[NETLINK_EXT_ACK, 'NETLINK_EXT_ACK'], [NETLINK_GET_STRICT_CHK, 'NETLINK_GET_STRICT_CHK']] as const) {
      if (getsockoptInt(taken, SOL_NETLINK, opt) !== 0) throw refuse(`is ${kind} with ${name} set, which the image cannot hold, not supported yet`);
    }
    const opts = dumpStep(what, () => commonOpts(taken));
    const nlsk = create(NetlinkSkEntrySchema, {
      id, ino, protocol, state: d?.state ?? 0, flags: p.info.flags, portid: d?.portid ?? 0, groups: groupWords(d?.groups ?? []),
      dstPortid: d?.dstPortid ?? 0, dstGroup: d?.dstGroup ?? 0, fown: emptyFown(), opts,
    });
    return create(FileEntrySchema, { type: FdTypes.NETLINKSK, id, nlsk });
  } catch (err) {
    throw failure('E_DUMP_FAILED', `Cannot read ${what}`, err);
  } finally {
    if (mine >= 0) closeFd(mine);
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

export const netlinkSocket = familySocketKind({
  name: 'netlink socket',
  type: FdTypes.NETLINKSK,
  family: AF_NETLINK,
  dump: dumpSocket,
  entryOf: (e) => e.nlsk,
  create: (k) => socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, k.protocol),
  make: (fd, k) => {
    if (k.groups.length > 1) throw new StasisError('E_UNSUPPORTED', `Cannot restore netlink socket ${k.id}: it listens on groups above 32`);
    // Before connect(), which would bind it to a port id of the kernel's choosing.
    if (k.portid) bindNetlink(fd, k.portid, k.groups[0] ?? 0);
    if (k.state === NETLINK_CONNECTED) connectNetlink(fd, k.dstPortid, k.dstGroup ? 1 << (k.dstGroup - 1) : 0);
  },
  what: (k) => `protocol ${k.protocol}, port ${k.portid}`,
});
