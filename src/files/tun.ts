// Tun files, /dev/net/tun opened (CRIU's TUNF: a REG entry of the file's path and flags, and a
// TunfileEntry of the same id in files.img). Dump: the device the file is attached to
// (TUNGETIFF: none for a file never attached), whether its queue is detached, and the network
// namespace it was opened in (SIOCGSKNS), which must be one dumped with the tree: its devices
// are dumped with it (ns/net-tun.ts), and a new file looks its device up there. Refused: a
// file of stasis's namespace or of another not dumped, a file whose device was moved to
// another namespace, and one with packets queued for its reader (the kernel's, lost on the
// way). Restore: /dev/net/tun opened again by its REG entry from within the new namespace,
// attached to its device, made there already, by name (TUNSETIFF), its queue detached if it
// was (TUNSETQUEUE).
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { TunfileEntrySchema } from '../image/gen/stasis/tun_pb.js';
import { NdType } from '../image/gen/stasis/netdev_pb.js';
import { readImage } from '../image/index.js';
import { closeFd, inNamespace, pollIn, tunAttach, tunGetIff, tunNetnsInode, withTaskFd, CLONE_NEWNET, IFF_DETACH_QUEUE } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { DumpFileCtx, FdProbe, FileKind, RestoreFileCtx } from './kind.js';
import { reg } from './reg.js';
import { failure } from './fail.js';

/** The misc device /dev/net/tun: major 10, minor 200 (TUN_MINOR). */
const TUN_RDEV = (10n << 8n) | 200n;
const S_IFMT = 0o170000n, S_IFCHR = 0o020000n;

/** The links of the network namespaces dumped with the tree: its root's own and those of its other tasks. */
function dumpedNetns(ctx: DumpFileCtx): string[] {
  return [...(ctx.tcp.netns ? [ctx.tcp.netns.link] : []), ...(ctx.unix.nestedNetns ?? []).map((n) => n.link)];
}

function dumpTun(p: FdProbe, ctx: DumpFileCtx, id: number): FileEntry[] {
  const what = `fd ${p.fd} of pid ${p.pid}`;
  const state = withTaskFd(p.pid, p.fd, (fd) => {
    const iff = tunGetIff(fd);
    const ns = `net:[${tunNetnsInode(fd, 'file')}]`;
    const devNs = iff ? `net:[${tunNetnsInode(fd, 'device')}]` : undefined;
    // A tun file is readable (poll) while packets wait in its queue.
    return { iff, ns, devNs, queued: iff ? pollIn(fd, 0) : false };
  });
  const { iff, ns } = state;
  const on = iff ? `attached to ${iff.name}` : 'attached to no device';
  if (!dumpedNetns(ctx).includes(ns)) {
    const whose = ns === fs.readlinkSync('/proc/self/ns/net') ? ' (stasis\'s own)' : '';
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it is a tun file (${on}) of network namespace ${ns}${whose}, which is not dumped with the tree; stasis restores tun files only in a network namespace of the tree's own (unshare -n), as CRIU does`);
  }
  if (state.devNs !== undefined && state.devNs !== ns) {
    throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it is a tun file opened in network namespace ${ns}, and its device ${iff!.name} was moved to ${state.devNs}; stasis cannot attach a file to a device of another namespace`);
  }
  if (state.queued) throw new StasisError('E_UNSUPPORTED', `Cannot dump ${what}: it is a tun file of ${iff!.name} with packets queued for its reader, which the kernel holds and cannot take again`);
  // The REG entry of the same id, as CRIU writes it (its open_reg_by_id opens the path again).
  const own = [reg.dump(p, ctx, id)].flat();
  const tunf = create(TunfileEntrySchema, {
    id, ...(iff ? { netdev: iff.name } : {}), ...(iff && iff.flags & IFF_DETACH_QUEUE ? { detached: true } : {}),
    ...(ctx.nsIdOf ? { nsId: ctx.nsIdOf(ns) } : {}),
  });
  return [...own, create(FileEntrySchema, { type: FdTypes.TUNF, id, tunf })];
}

function openTun(e: FileEntry, ctx: RestoreFileCtx): number {
  const t = e.tunf!;
  const r = ctx.regTwin?.(e.id);
  if (!r?.reg) throw new StasisError('E_CORRUPT', `Tun file ${e.id} has no REG entry of its id in files.img (its path and flags)`);
  if (!t.nsId) throw new StasisError('E_UNSUPPORTED', `Cannot restore tun file ${e.id}: its entry names no network namespace (images of a CRIU before 3.x), and stasis does not guess one`);
  const dev = t.netdev ? readImage(ctx.imagesDir, 'netdev', t.nsId).find((d) => d.name === t.netdev && d.type === NdType.TUN) : undefined;
  if (t.netdev && !dev?.tun) throw new StasisError('E_CORRUPT', `Tun file ${e.id} is attached to ${t.netdev}, which netdev-${t.nsId}.img does not hold as a tun device`);
  const opened = reg.open(r, ctx);
  if (opened.status !== 'done') throw new StasisError('E_RESTORE_FAILED', `Cannot reopen tun file ${e.id}`);
  try {
    if (dev) tunAttach(opened.fd, dev.name, dev.tun!.flags, dev.tun!.sndbuf, t.detached);
  } catch (err) {
    closeFd(opened.fd);
    throw err;
  }
  return opened.fd;
}

export const tun = {
  name: 'tun file',
  type: FdTypes.TUNF,
  detect: (p) => (p.stat.mode & S_IFMT) === S_IFCHR && p.stat.rdev === TUN_RDEV,
  dump: dumpTun,
  open: (e, ctx) => {
    if (!e.tunf) throw new StasisError('E_CORRUPT', `File ${e.id} is a tun file without its entry`);
    try {
      // Opened in its namespace: TUNSETIFF looks the device up in the file's, now and later.
      const ns = e.tunf.nsId ? ctx.netnsOf?.(e.tunf.nsId) : undefined;
      return { status: 'done', fd: ns ? inNamespace(ns, 'net', CLONE_NEWNET, () => openTun(e, ctx)) : ctx.tcp.inNetns(() => openTun(e, ctx)) };
    } catch (err) {
      throw failure('E_RESTORE_FAILED', `Cannot restore tun file ${e.id}${e.tunf.netdev ? ` (attached to ${e.tunf.netdev})` : ''}`, err);
    }
  },
} satisfies FileKind;
