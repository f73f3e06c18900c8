// epoll instances. The instance is created once in stasis and installed like any file; its
// targets are added afterwards by a task that holds it, inside that task (epoll_ctl keys a
// target by its file *and* its fd number in the adding process, so stasis cannot add them
// with its own fds: the task's later EPOLL_CTL_MOD/DEL would not find them).
// A target whose fd was closed since it was added (the file kept alive by another fd) is
// found with kcmp(KCMP_EPOLL_TFD) among the task's fds; the image names that fd as its tfd,
// as CRIU does, and the number it was added by in `added_as`: restore puts the file at that
// number for the epoll_ctl, then gives the number back to whatever holds it. A target whose
// file no fd of the task holds any more fails the dump.
import fs from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { EventpollTfdEntrySchema } from '../image/gen/stasis/eventpoll_pb.js';
import { epollCreate, kcmpEpollTarget, failedWith, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FdProbe, FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const O_CLOEXEC = 0o2000000, EPOLL_CTL_ADD = 1, F_GETFD = 1, F_DUPFD_CLOEXEC = 1030, EBADF = 9;

export const eventpoll = {
  name: 'epoll',
  type: FdTypes.EVENTPOLL,
  detect: (p) => p.link === 'anon_inode:[eventpoll]',
  dump: (p, _ctx, id) => dumpEpoll(p, id, p.pid),
  open: (e) => {
    if (!e.epfd) throw new StasisError('E_CORRUPT', `File ${e.id} is an epoll instance without its entry`);
    return { status: 'done', fd: epollCreate(O_CLOEXEC) };
  },
} satisfies FileKind;

/**
 * The entry of the epoll instance `p`, whose targets are fds of `owner` (the task holding it;
 * for one in flight in a socket's queue, held by stasis, the task holding that socket).
 */
export function dumpEpoll(p: FdProbe, id: number, owner: number): FileEntry {
  const seen = new Map<number, number>();
  let fds: number[] | undefined;
  const tfd = (p.info.epoll ?? []).map((t) => {
    // The kernel finds a target by its fd number and its rank among targets of that number.
    const toff = seen.get(t.tfd) ?? 0;
    seen.set(t.tfd, toff + 1);
    const entry = { id, tfd: t.tfd, events: t.events, data: t.data, dev: t.sdev, inode: t.ino, pos: t.pos };
    if (kcmpEpollTarget(owner, t.tfd, p.pid, p.fd, t.tfd, toff)) return entry;
    fds ??= fs.readdirSync(`/proc/${owner}/fd`).map(Number).sort((a, b) => a - b);
    const holder = fds.find((fd) => kcmpEpollTarget(owner, fd, p.pid, p.fd, t.tfd, toff));
    if (holder === undefined) {
      const which = owner === p.pid ? `epoll fd ${p.fd} of pid ${p.pid}` : `an epoll instance in flight in a socket of pid ${owner}`;
      throw new StasisError('E_UNSUPPORTED',
        `Cannot dump ${which}: it watches a file added as fd ${t.tfd} (inode ${t.ino}), which no fd of pid ${owner} holds any more`);
    }
    return { ...entry, tfd: holder, addedAs: t.tfd };
  });
  return create(FileEntrySchema, { type: FdTypes.EVENTPOLL, id, epfd: { id, flags: p.info.flags, fown: emptyFown(), tfd } });
}

/** Adds the instance's targets from inside a task that has it at `epfd` and every target fd installed. */
export function addEpollTargets(inj: Injector, epfd: number, e: FileEntry): void {
  const fail = (what: string, r: bigint) => {
    throw new StasisError('E_RESTORE_FAILED', `Cannot ${what} for epoll fd ${epfd} in pid ${inj.pid}: ${failedWith(r)}`);
  };
  for (const t of e.epfd?.tfd ?? []) {
    inj.resetScratch();
    const ev = Buffer.alloc(12); // struct epoll_event is packed on x86-64
    ev.writeUInt32LE(t.events >>> 0, 0);
    ev.writeBigUInt64LE(t.data, 4);
    const at = isFieldSet(t, EventpollTfdEntrySchema.field.addedAs) ? t.addedAs : t.tfd;
    if (at === t.tfd) {
      const r = inj.call('epoll_ctl', epfd, EPOLL_CTL_ADD, t.tfd, inj.put(ev));
      if (r < 0n) fail(`add fd ${t.tfd}`, r);
      continue;
    }
    // The target file goes to the number it was added by, for the time of the epoll_ctl.
    const flags = inj.call('fcntl', at, F_GETFD, 0);
    if (flags < 0n && flags !== -BigInt(EBADF)) fail(`look at fd ${at}`, flags);
    const parked = flags >= 0n ? inj.call('fcntl', at, F_DUPFD_CLOEXEC, 0) : -1n;
    if (flags >= 0n && parked < 0n) fail(`move fd ${at} aside`, parked);
    let r = inj.call('dup3', t.tfd, at, O_CLOEXEC);
    if (r < 0n) fail(`put fd ${t.tfd} at ${at}`, r);
    const added = inj.call('epoll_ctl', epfd, EPOLL_CTL_ADD, at, inj.put(ev));
    r = parked >= 0n ? inj.call('dup3', parked, at, flags & 1n ? O_CLOEXEC : 0) : inj.call('close', at);
    if (r < 0n) fail(`give fd ${at} back`, r);
    if (parked >= 0n) inj.call('close', parked);
    if (added < 0n) fail(`add the file of fd ${t.tfd} as fd ${at}`, added);
  }
}
