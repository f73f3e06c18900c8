// epoll instances. The instance is created once in stasis and installed like any file; its
// targets are added afterwards by a task that holds it, inside that task (epoll_ctl keys a
// target by its file *and* its fd number in the adding process, so stasis cannot add them
// with its own fds: the task's later EPOLL_CTL_MOD/DEL would not find them). A target whose
// fd was closed since it was added (the file kept alive elsewhere) cannot be re-added and
// fails the dump.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import { epollCreate, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const O_CLOEXEC = 0o2000000, EPOLL_CTL_ADD = 1;

export const eventpoll = {
  name: 'epoll',
  type: FdTypes.EVENTPOLL,
  detect: (p) => p.link === 'anon_inode:[eventpoll]',
  dump: (p, _ctx, id) => {
    const tfd = (p.info.epoll ?? []).map((t) => {
      let ino: bigint | null = null;
      try {
        ino = fs.statSync(`/proc/${p.pid}/fd/${t.tfd}`, { bigint: true }).ino;
      } catch {
        /* closed */
      }
      if (ino !== t.ino) {
        throw new StasisError('E_UNSUPPORTED_FD',
          `Cannot dump epoll fd ${p.fd} of pid ${p.pid}: it watches fd ${t.tfd}, which was closed or replaced since it was added`);
      }
      return { id, tfd: t.tfd, events: t.events, data: t.data, dev: t.sdev, inode: t.ino, pos: t.pos };
    });
    return create(FileEntrySchema, { type: FdTypes.EVENTPOLL, id, epfd: { id, flags: p.info.flags, fown: emptyFown(), tfd } });
  },
  open: (e) => {
    if (!e.epfd) throw new StasisError('E_CORRUPT', `File ${e.id} is an epoll instance without its entry`);
    return { status: 'done', fd: epollCreate(O_CLOEXEC) };
  },
} satisfies FileKind;

/** Adds the instance's targets from inside a task that has it at `epfd` and every target fd installed. */
export function addEpollTargets(inj: Injector, epfd: number, e: FileEntry): void {
  inj.resetScratch();
  const ev = Buffer.alloc(12); // struct epoll_event is packed on x86-64
  for (const t of e.epfd?.tfd ?? []) {
    ev.writeUInt32LE(t.events >>> 0, 0);
    ev.writeBigUInt64LE(t.data, 4);
    const r = inj.call('epoll_ctl', epfd, EPOLL_CTL_ADD, t.tfd, inj.put(ev));
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot add fd ${t.tfd} to epoll fd ${epfd} in pid ${inj.pid}: errno ${-r}`);
  }
}
