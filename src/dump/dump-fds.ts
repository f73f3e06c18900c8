// The fds of a frozen task: each one's open file object is named through FileIds (shared
// objects get one id), new objects are described once by their kind, and every fd gets an
// FdinfoEntry naming its object.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FdinfoEntrySchema, type FdinfoEntry, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { parseFdinfo } from '../proc/index.js';
import { FILE_KINDS, FileIds, dumpEpoll, type DumpFileCtx, type FdProbe } from '../files/index.js';
import { StasisError } from '../errors.js';
import { fcntl, withTaskFd } from '../sys/index.js';

const O_CLOEXEC = 0o2000000, F_GETLEASE = 1025;

export interface DumpedFds {
  fdinfos: FdinfoEntry[];
  files: FileEntry[];
}

export function probeFd(pid: number, fd: number): FdProbe {
  const base = `/proc/${pid}/fd/${fd}`;
  return {
    pid,
    fd,
    link: fs.readlinkSync(base),
    stat: fs.statSync(base, { bigint: true }),
    info: parseFdinfo(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')),
  };
}

/** The network namespace of `pid` when it is not stasis's. */
function otherNetns(pid: number): string | undefined {
  try {
    const theirs = fs.readlinkSync(`/proc/${pid}/ns/net`);
    return theirs !== fs.readlinkSync('/proc/thread-self/ns/net') ? theirs : undefined;
  } catch {
    return undefined;
  }
}

export function dumpFds(task: DumpFileCtx): DumpedFds {
  const out: DumpedFds = { fdinfos: [], files: [] };
  const ctx: DumpFileCtx = { ...task, dumpInFlight: (fd) => dumpInFlight(ctx, out, fd) };
  const fds = fs.readdirSync(`/proc/${ctx.pid}/fd`).map(Number).sort((a, b) => a - b);
  for (const fd of fds) {
    const p = probeFd(ctx.pid, fd);
    const kind = FILE_KINDS.find((k) => k.detect(p, ctx));
    if (!kind) {
      // sock_diag answers for stasis's network namespace only: a socket of the tree's own is unknown there.
      const netns = /^socket:/.test(p.link) ? otherNetns(ctx.pid) : undefined;
      if (netns && ctx.tcp.netns) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${fd} of pid ${ctx.pid}: ${p.link} is a socket sock_diag does not know in the tree's own network namespace ${ctx.tcp.netns.link} (a socket of another namespace, or of a kind stasis does not support yet)`);
      if (netns) throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${fd} of pid ${ctx.pid}: ${p.link} is a socket of network namespace ${netns}, not stasis's; stasis cannot dump the sockets of another network namespace yet`);
      throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${fd} of pid ${ctx.pid}: ${p.link} is a kind of file stasis does not support yet`);
    }
    const { id, isNew } = ctx.ids.lookup(FileIds.genid(p.stat.dev, p.stat.ino, p.info.pos), ctx.pid, fd);
    ctx.log?.debug(`pid ${ctx.pid} fd ${fd}: ${kind.name} ${JSON.stringify(p.link)}, file id ${id}${isNew ? '' : ' (shared)'}`);
    if (isNew) {
      const probe = { ...p, info: { ...p.info, flags: p.info.flags & ~O_CLOEXEC } };
      const entries = [kind.dump(probe, ctx, id)].flat();
      out.files.push(...entries);
    }
    ctx.locks?.add(p, id, () => withTaskFd(ctx.pid, fd, (mine) => fcntl(mine, F_GETLEASE)));
    out.fdinfos.push(create(FdinfoEntrySchema, { id, flags: p.info.flags & O_CLOEXEC ? 1 : 0, type: kind.type, fd }));
  }
  return out;
}

/**
 * A file passed in a socket's queue (SCM_RIGHTS), which stasis now holds at `fd`: named as
 * the tasks' files are (the same open file as a task's fd gets its id), described once. The
 * fd stays open until the dump ends: later files are compared with it.
 */
function dumpInFlight(ctx: DumpFileCtx, out: DumpedFds, fd: number): number {
  ctx.unix.inFlight.push(fd);
  const p = probeFd(process.pid, fd);
  const kind = FILE_KINDS.find((k) => k.detect(p, ctx));
  if (!kind) throw new StasisError('E_UNSUPPORTED', `Cannot dump a file in flight in a socket of pid ${ctx.pid}: ${p.link} is a kind of file stasis does not support yet`);

  // A pidfd is opened once the tree exists, after the sockets whose queues hold files.
  if (kind.type === FdTypes.PIDFD) throw new StasisError('E_UNSUPPORTED', `Cannot dump a file in flight in a socket of pid ${ctx.pid}: it is a pidfd, which stasis cannot pass again yet`);
  const { id, isNew } = ctx.ids.lookup(FileIds.genid(p.stat.dev, p.stat.ino, p.info.pos), process.pid, fd);
  ctx.log?.debug(`pid ${ctx.pid}: a file in flight, ${kind.name} ${JSON.stringify(p.link)}, file id ${id}${isNew ? '' : ' (shared)'}`);
  const probe = { ...p, info: { ...p.info, flags: p.info.flags & ~O_CLOEXEC } };
  // An epoll's targets are fds of the task that added them: restore adds them again in the
  // task holding this socket (the first in the tree, as here), as CRIU does, so they must be its fds.
  if (isNew && kind.type === FdTypes.EVENTPOLL) out.files.push(dumpEpoll(probe, id, ctx.pid));
  else if (isNew) out.files.push(...[kind.dump(probe, ctx, id)].flat());
  return id;
}
