// Packet sockets, AF_PACKET (CRIU's PacketSockEntry inside files.img).
//
// Dump: sock_diag's packet dump gives the socket's type, protocol, interface, PACKET_* options,
// memberships, rings and fanout group; the socket is taken into stasis for its socket options
// and the options no diag reports. Refused, naming pid, fd and why: packets queued or in
// flight, rings the kernel or the task has written to (the frames' contents and the ring's
// position are the kernel's), TPACKET_V3 rings, a fanout group with other members (their
// order is the kernel's) or of a kind with a program, memberships added more than once, the
// options CRIU's image has no room for, sockets of a network namespace other than stasis's or
// the tree's own (looked at from within it, and made in the new one, where each interface of
// its own comes back with its index).
//
// Restore: socket(), bind() to the interface (a SOCK_PACKET one by the interface's name), the
// PACKET_* options, memberships, rings and fanout group in the order the kernel allows them,
// then the socket options and status flags. Mappings of the rings are mapped again by the
// task's memory restore (a SOCKET area naming this file).
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { PacketRingSchema, PacketSockEntrySchema, type PacketRing, type PacketSockEntry } from '../image/gen/stasis/packet-sock_pb.js';
import {
  bindPacket, bindSpkt, closeFd, getsockoptInt, ifName, netnsCookie, packetRingsZero, packetSockets, pidfdGetfd, pidfdOpen,
  setsockoptBytes, setsockoptInt, socket, SyscallError, type PacketDiag, type PacketRingDiag,
  AF_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_AUXDATA, PACKET_COPY_THRESH, PACKET_FANOUT, PACKET_IGNORE_OUTGOING, PACKET_LOSS,
  PACKET_ORIGDEV, PACKET_QDISC_BYPASS, PACKET_RESERVE, PACKET_RX_RING, PACKET_TIMESTAMP, PACKET_TX_HAS_OFF, PACKET_TX_RING,
  PACKET_VERSION, PACKET_VNET_HDR, PACKET_VNET_HDR_SZ, PDI, SOCK_CLOEXEC, SOCK_PACKET, SOL_PACKET,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe } from './kind.js';
import { emptyFown } from './reg.js';
import { commonOpts, familySocketKind, ownerRefusal } from './sk-opts.js';
import { dumpStep, failure } from './fail.js';

const TPACKET_V3 = 2;
const MR_MULTICAST = 0, MR_PROMISC = 1, MR_ALLMULTI = 2, MR_UNICAST = 3;
/** PACKET_FANOUT's kinds with a program of their own (CBPF, EBPF), and its flag for an id the kernel chose. */
const FANOUT_CBPF = 6, FANOUT_EBPF = 7, FANOUT_FLAG_UNIQUEID = 0x20;
/** A VNET_HDR socket's header size without PACKET_VNET_HDR_SZ: sizeof(struct virtio_net_hdr). */
const VNET_HDR_LEN = 10;

const htons = (v: number) => ((v & 0xff) << 8) | ((v >> 8) & 0xff);
const ringBytes = (r?: PacketRingDiag) => (r ? r.blockSize * r.blockNr : 0);

/** The options packet_getsockopt() reports and the image has no field for: each must be as a new socket has it. */
function extraOptsRefusal(fd: number, d: PacketDiag): string | undefined {
  const opt = (o: number) => {
    try {
      return getsockoptInt(fd, SOL_PACKET, o);
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'ENOPROTOOPT') return undefined; // an older kernel: it has no such option
      throw err;
    }
  };
  for (const [o, name] of [[PACKET_QDISC_BYPASS, 'PACKET_QDISC_BYPASS'], [PACKET_TX_HAS_OFF, 'PACKET_TX_HAS_OFF'], [PACKET_IGNORE_OUTGOING, 'PACKET_IGNORE_OUTGOING']] as const) {
    const v = opt(o);
    if (v) return `has ${name} set, which the image cannot hold, not supported yet`;
  }
  const hdr = opt(PACKET_VNET_HDR_SZ);
  if (hdr !== undefined && hdr !== (d.flags & PDI.VNETHDR ? VNET_HDR_LEN : 0)) return `has a PACKET_VNET_HDR_SZ of ${hdr}, which the image cannot hold, not supported yet`;
  return undefined;
}

/** Why the packet socket cannot be restored, or undefined. */
function refusal(d: PacketDiag, all: Map<number, PacketDiag>, taken: number): string | undefined {
  if (d.rmemAlloc > 0 || d.wmemAlloc > 0) return `has packets queued (${d.rmemAlloc} bytes to receive, ${d.wmemAlloc} to send), which cannot be queued again, not supported yet`;
  if (d.num !== 0 && !(d.flags & PDI.RUNNING)) return `is not receiving (its interface ${d.ifindex} is down, or was removed), not supported yet`;
  for (const m of d.mclist) {
    if (m.count !== 1) return `holds membership ${m.type} on interface ${m.index} ${m.count} times, not supported yet`;
    if (![MR_MULTICAST, MR_PROMISC, MR_ALLMULTI, MR_UNICAST].includes(m.type)) return `holds a membership of unknown type ${m.type}, not supported`;
  }
  if (d.fanout !== undefined) {
    const id = d.fanout & 0xffff, kind = (d.fanout >>> 16) & 0xff, flags = d.fanout >>> 24;
    if (kind === FANOUT_CBPF || kind === FANOUT_EBPF) return `is in fanout group ${id} of kind ${kind}, whose program cannot be read back, not supported yet`;
    if (flags & FANOUT_FLAG_UNIQUEID) return `is in fanout group ${id}, an id the kernel chose (PACKET_FANOUT_FLAG_UNIQUEID), not supported yet`;
    const members = [...all.values()].filter((o) => o.fanout !== undefined && (o.fanout & 0xffff) === id).length;
    if (members > 1) return `is in fanout group ${id} with ${members - 1} other sockets, whose order in the group is the kernel's, not supported yet`;
  }
  if (d.rxRing || d.txRing) {
    if (d.version === TPACKET_V3) return 'has a TPACKET_V3 ring, whose blocks the kernel keeps state of, not supported yet';
    if (!packetRingsZero(taken, ringBytes(d.rxRing) + ringBytes(d.txRing))) {
      return 'has a ring frames were received or sent through: their contents and the ring\'s position are the kernel\'s, not supported yet';
    }
  }
  // SOCK_PACKET sockets have no PACKET_* options (EOPNOTSUPP).
  return d.type === SOCK_PACKET ? undefined : extraOptsRefusal(taken, d);
}

function ringEntry(r?: PacketRingDiag): PacketRing | undefined {
  if (!r) return undefined;
  return create(PacketRingSchema, {
    blockSize: r.blockSize, blockNr: r.blockNr, frameSize: r.frameSize, frameNr: r.frameNr,
    retireTmo: r.retireTmo, sizeofPriv: r.sizeofPriv, features: r.features,
  });
}

function dumpSocket(p: FdProbe, ctx: DumpFileCtx, id: number): FileEntry {
  const ino = Number(p.stat.ino);
  const what = `fd ${p.fd} of pid ${p.pid}: ${p.link}`;
  const pidfd = pidfdOpen(p.pid);
  let taken = -1, mine = -1;
  try {
    taken = pidfdGetfd(pidfd, p.fd);
    // sock_diag answers for the namespace its socket is of: stasis's, or the tree's own (dumped with it).
    mine = ctx.tcp.inNetns(() => socket(AF_PACKET, SOCK_PACKET | SOCK_CLOEXEC, 0));
    if (netnsCookie(taken) !== netnsCookie(mine)) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} is a packet socket of another network namespace than ${ctx.tcp.netns ? 'the tree\'s own' : 'stasis\'s'}, not supported yet`);
    const owner = ownerRefusal(taken, p.info.flags);
    if (owner) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} ${owner}`);
    const all = ctx.tcp.inNetns(() => packetSockets());
    const d = all.get(ino);
    if (!d) throw new StasisError('E_DUMP_FAILED', `Cannot dump ${what}: sock_diag does not know the packet socket`);
    const refused = refusal(d, all, taken);
    if (refused) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what} (a packet socket of type ${d.type}, protocol 0x${d.num.toString(16)}, on interface ${d.ifindex}) ${refused}`);
    const opts = dumpStep(what, () => commonOpts(taken));
    const rxRing = ringEntry(d.rxRing), txRing = ringEntry(d.txRing);
    const psk = create(PacketSockEntrySchema, {
      id, type: d.type, protocol: htons(d.num), flags: p.info.flags, ifindex: d.ifindex, fown: emptyFown(), opts,
      version: d.version, reserve: d.reserve, auxData: !!(d.flags & PDI.AUXDATA), origDev: !!(d.flags & PDI.ORIGDEV),
      vnetHdr: !!(d.flags & PDI.VNETHDR), loss: !!(d.flags & PDI.LOSS), timestamp: d.tstamp, copyThresh: d.copyThresh,
      mclist: d.mclist.map((m) => ({ index: m.index, type: m.type, addr: m.type === MR_UNICAST || m.type === MR_MULTICAST ? m.addr : Buffer.alloc(0) })),
      ...(d.fanout !== undefined ? { fanout: d.fanout } : {}), ...(rxRing ? { rxRing } : {}), ...(txRing ? { txRing } : {}),
    });
    return create(FileEntrySchema, { type: FdTypes.PACKETSK, id, psk });
  } catch (err) {
    throw failure('E_DUMP_FAILED', `Cannot read ${what}`, err);
  } finally {
    if (mine >= 0) closeFd(mine);
    if (taken >= 0) closeFd(taken);
    closeFd(pidfd);
  }
}

function setRing(fd: number, opt: number, r: PacketRing | undefined): void {
  if (!r) return;
  const req = Buffer.alloc(28); // struct tpacket_req3 (tpacket_req is its head)
  [r.blockSize, r.blockNr, r.frameSize, r.frameNr, r.retireTmo, r.sizeofPriv, r.features].forEach((v, i) => req.writeUInt32LE(v >>> 0, 4 * i));
  setsockoptBytes(fd, SOL_PACKET, opt, req);
}

export const packetSocket = familySocketKind({
  name: 'packet socket',
  type: FdTypes.PACKETSK,
  family: AF_PACKET,
  dump: dumpSocket,
  entryOf: (e) => e.psk,
  create: (k) => socket(AF_PACKET, k.type | SOCK_CLOEXEC, k.protocol),
  make: (fd, k) => {
    if (k.type === SOCK_PACKET) {
      if (k.ifindex > 0) bindSpkt(fd, ifName(fd, k.ifindex));
    } else {
      bindPacket(fd, k.ifindex);
      // Version and reserve before the rings (EBUSY once there is one); fanout once it receives.
      if (k.version) setsockoptInt(fd, SOL_PACKET, PACKET_VERSION, k.version);
      if (k.reserve) setsockoptInt(fd, SOL_PACKET, PACKET_RESERVE, k.reserve);
      if (k.timestamp) setsockoptInt(fd, SOL_PACKET, PACKET_TIMESTAMP, k.timestamp);
      if (k.copyThresh) setsockoptInt(fd, SOL_PACKET, PACKET_COPY_THRESH, k.copyThresh);
      if (k.auxData) setsockoptInt(fd, SOL_PACKET, PACKET_AUXDATA, 1);
      if (k.origDev) setsockoptInt(fd, SOL_PACKET, PACKET_ORIGDEV, 1);
      if (k.vnetHdr) setsockoptInt(fd, SOL_PACKET, PACKET_VNET_HDR, 1);
      if (k.loss) setsockoptInt(fd, SOL_PACKET, PACKET_LOSS, 1);
      for (const m of k.mclist) {
        if (m.addr.length > 32) throw new StasisError('E_CORRUPT', `Packet socket ${k.id} has a membership address of ${m.addr.length} bytes`);
        const mreq = Buffer.alloc(40); // struct packet_mreq with room for MAX_ADDR_LEN bytes
        mreq.writeInt32LE(m.index, 0);
        mreq.writeUInt16LE(m.type, 4);
        mreq.writeUInt16LE(m.addr.length, 6);
        Buffer.from(m.addr).copy(mreq, 8);
        setsockoptBytes(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
      }
      setRing(fd, PACKET_RX_RING, k.rxRing);
      setRing(fd, PACKET_TX_RING, k.txRing);
      if (k.fanout !== undefined && k.fanout !== 0xffffffff) setsockoptInt(fd, SOL_PACKET, PACKET_FANOUT, k.fanout | 0);
    }
  },
  what: (k) => `type ${k.type}, interface ${k.ifindex}`,
});
