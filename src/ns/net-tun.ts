// The tun and tap devices of a network namespace, CRIU's way (criu/tun.c dump_tun_link,
// restore_one_tun): each is a TUN entry of netdev-<id>.img whose TunLinkEntry holds its
// tun_flags, owner and group (read from a sysfs of the namespace's own, as CRIU reads them),
// and its virtio header size and socket buffer (asked of a file attached to it: one of the
// tree's, or, for a persistent device nobody holds, a file stasis attaches for the moment, as
// CRIU does). The files are the tree's (files/tun.ts); a device is refused where a file
// outside the tree holds one of its queues (it would come back without it), where a tap has a
// socket filter, or where its virtio headers are big- or little-endian by choice (the image
// has no room for either). At restore each device is made persistent from stasis in the new
// namespace, at its ifindex, before any file is opened; the first file attached to one that
// was not persistent drops its persistence (CRIU's order), so that it goes with its last file.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import {
  closeFd, openat, openDetachedFs, pidfdGetfd, pidfdOpen, tunAttach, tunAttachedState, tunGetIff, tunNetnsInode, tunSetIfindex, tunSetIff,
  tunSetOwner, tunSetPersist, tunSetSndbuf, tunSetVnetHdrSz, SyscallError,
  IFF_DETACH_QUEUE, IFF_MULTI_QUEUE, IFF_PERSIST, IFF_TAP, TUN_MAKE_FLAGS,
} from '../sys/index.js';
import { NdType, TunLinkEntrySchema, type NetDeviceEntry } from '../image/gen/stasis/netdev_pb.js';
import { StasisError } from '../errors.js';
import type { JsonLink } from './net-dev.js';

const TUN_PATH = '/dev/net/tun';
const AT_FDCWD = -100, O_RDWR = 2, O_CLOEXEC = 0o2000000;

/** How many files of the tree hold each tun device's queues, attached and detached: the trial attaches as many. */
export type TunQueues = Map<string, { attached: number; detached: number }>;

/** A tun file of the tree attached to a device of this namespace: stasis's copy of it, and whether its queue is detached. */
interface TreeTunFile {
  fd: number;
  what: string;
  device: string;
  detached: boolean;
}

/** The tree's tun files opened in the namespace `nsIno` and attached to a device there (stasis's copies: the caller closes them). */
function treeTunFiles(tree: number[], nsIno: number): TreeTunFile[] {
  const out: TreeTunFile[] = [];
  for (const pid of tree) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // a zombie
    }
    let pidfd = -1;
    try {
      for (const n of fds) {
        try {
          if (fs.readlinkSync(`/proc/${pid}/fd/${n}`) !== TUN_PATH) continue;
        } catch {
          continue;
        }
        if (pidfd < 0) pidfd = pidfdOpen(pid);
        const fd = pidfdGetfd(pidfd, Number(n));
        let kept = false;
        try {
          // A file of /dev/net/tun whose TUNGETIFF fails otherwise is no tun file: its kind is refused at its fd.
          const iff = tunNetnsInode(fd, 'file') === nsIno ? tunGetIff(fd) : undefined;
          if (iff) {
            out.push({ fd, what: `fd ${n} of pid ${pid}`, device: iff.name, detached: (iff.flags & IFF_DETACH_QUEUE) !== 0 });
            kept = true;
          }
        } catch (err) {
          if (!(err instanceof SyscallError)) throw err;
        } finally {
          if (!kept) closeFd(fd);
        }
      }
    } finally {
      if (pidfd >= 0) closeFd(pidfd);
    }
  }
  return out;
}

/** A sysfs file of a device of this thread's namespace, read through the namespace's own sysfs (`sysfs`: its mount's fd). */
const sysfsValue = (sysfs: number, dev: string, file: string) => fs.readFileSync(`/proc/self/fd/${sysfs}/class/net/${dev}/${file}`, 'utf8').trim();

/** Opens /dev/net/tun in this thread's namespace. */
function openTun(): number {
  return openat(AT_FDCWD, TUN_PATH, O_RDWR | O_CLOEXEC);
}

/**
 * Gives each TUN entry of `devs` (this thread's namespace, `json` as `ip` lists it) its
 * TunLinkEntry; returns why any cannot be dumped, and the queues the tree holds. `tree` is
 * every task of the tree, `nsIno` the namespace's inode.
 */
export function readTunLinks(devs: NetDeviceEntry[], json: JsonLink[], tree: number[], nsIno: number): { problems: string[]; queues: TunQueues } {
  const problems: string[] = [];
  const queues: TunQueues = new Map();
  const tuns = devs.filter((d) => d.type === NdType.TUN);
  if (!tuns.length) return { problems, queues };
  const files = treeTunFiles(tree, nsIno);
  const sysfs = openDetachedFs('sysfs');
  try {
    for (const d of tuns) {
      const flags = Number(sysfsValue(sysfs, d.name, 'tun_flags'));
      const owner = Number(sysfsValue(sysfs, d.name, 'owner')), group = Number(sysfsValue(sysfs, d.name, 'group'));
      const mine = files.filter((f) => f.device === d.name);
      const attached = mine.filter((f) => !f.detached).length, detached = mine.length - attached;
      queues.set(d.name, { attached, detached });
      const info = json.find((l) => l.ifname === d.name)?.linkinfo?.info_data;
      // A multi-queue device counts its queues; a single one is held by one file at most.
      if (flags & IFF_MULTI_QUEUE && (info?.numqueues !== attached || info?.numdisabled !== detached)) {
        problems.push(`its tun device ${d.name} has ${info?.numqueues ?? '?'} queues attached and ${info?.numdisabled ?? '?'} detached, of which the tree's files hold ${attached} and ${detached}: files outside the tree hold the others, and would lose them`);
        continue;
      }
      if (!mine.length && !(flags & IFF_PERSIST)) {
        problems.push(`its tun device ${d.name} is not persistent and no file of the tree is attached to it: a file outside the tree holds it`);
        continue;
      }
      let probe = mine[0]?.fd ?? -1;
      const own = probe < 0;
      try {
        // A persistent device nobody holds: attached for the moment with the flags it has (TUNSETIFF sets them again).
        if (own) {
          probe = openTun();
          try {
            tunSetIff(probe, d.name, flags & TUN_MAKE_FLAGS);
          } catch (err) {
            if (err instanceof SyscallError && err.code === 'EBUSY') {
              problems.push(`its tun device ${d.name} is attached to a file outside the tree`);
              continue;
            }
            throw err;
          }
        }
        const st = tunAttachedState(probe, (flags & IFF_TAP) !== 0);
        if (st.filterLen) problems.push(`its tap device ${d.name} has a socket filter (TUNATTACHFILTER), which stasis cannot read back`);
        if (st.vnetLe || st.vnetBe) problems.push(`its tun device ${d.name} has ${st.vnetLe ? 'little' : 'big'}-endian virtio headers (TUNSETVNET${st.vnetLe ? 'LE' : 'BE'}), which the image has no room for`);
        // TUNSETSNDBUF sets every file's at once; a file attached after it has the default.
        for (const f of mine) {
          const other = tunAttachedState(f.fd, false).sndbuf;
          if (other !== st.sndbuf) problems.push(`its tun device ${d.name} has files with socket buffers of ${st.sndbuf} and ${other} bytes (${f.what}), which the image cannot tell apart`);
        }
        d.tun = create(TunLinkEntrySchema, { flags, owner, group, vnethdr: st.vnethdr, sndbuf: st.sndbuf >>> 0 });
      } finally {
        if (own && probe >= 0) closeFd(probe);
      }
    }
  } finally {
    closeFd(sysfs);
    for (const f of files) closeFd(f.fd);
  }
  return { problems, queues };
}

/**
 * Makes the TUN devices of `devs` in this thread's namespace, down, each at its ifindex with
 * its flags, owner, group, socket buffer and header size, persistent until their files are
 * attached (files/tun.ts). Their MAC address and MTU are set as the other devices' are.
 */
export function makeTunDevices(devs: readonly NetDeviceEntry[], what: string): void {
  for (const d of devs) {
    if (d.type !== NdType.TUN) continue;
    if (!d.tun) throw new StasisError('E_CORRUPT', `Cannot restore tun device ${d.name} of ${what}: its entry has no tun link`);
    const fd = openTun();
    try {
      tunSetIfindex(fd, d.ifindex);
      tunSetIff(fd, d.name, d.tun.flags & TUN_MAKE_FLAGS);
      tunSetOwner(fd, d.tun.owner, d.tun.group);
      tunSetSndbuf(fd, d.tun.sndbuf | 0);
      tunSetVnetHdrSz(fd, d.tun.vnethdr);
      tunSetPersist(fd, true);
    } catch (err) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot make tun device ${d.name} (index ${d.ifindex}, flags 0x${d.tun.flags.toString(16)}) in ${what}: ${(err as Error).message}`, { cause: err });
    } finally {
      closeFd(fd);
    }
  }
}

/**
 * For the dump's trial, in its scratch namespace: the tun devices made as the restore makes
 * them, and as many files attached to each as the tree holds (`queues`), so that the devices
 * list the same queues, persistence and carrier. Returns what closes those files.
 */
export function trialTunFiles(devs: readonly NetDeviceEntry[], queues: TunQueues): () => void {
  const open: number[] = [];
  const close = () => {
    for (const fd of open.splice(0)) closeFd(fd);
  };
  try {
    makeTunDevices(devs, 'the trial namespace');
    for (const d of devs) {
      const q = d.type === NdType.TUN ? queues.get(d.name) : undefined;
      for (let i = 0; i < (q?.attached ?? 0) + (q?.detached ?? 0); i++) {
        const fd = openTun();
        open.push(fd);
        tunAttach(fd, d.name, d.tun!.flags, d.tun!.sndbuf, i >= q!.attached);
      }
    }
  } catch (err) {
    close();
    throw err;
  }
  return close;
}
