// eventfds: the counter and the semaphore mode from fdinfo, re-created in stasis with the
// same counter; file flags (O_NONBLOCK) as they were.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { eventfd as newEventfd } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, EFD_SEMAPHORE = 1;

export const eventfd = {
  name: 'eventfd',
  type: FdTypes.EVENTFD,
  detect: (p) => p.link === 'anon_inode:[eventfd]',
  dump: (p, _ctx, id) => {
    if (!p.info.eventfd) throw new StasisError('E_DUMP_FAILED', `Cannot read the counter of eventfd ${p.fd} of pid ${p.pid} from fdinfo`);
    return create(FileEntrySchema, {
      type: FdTypes.EVENTFD,
      id,
      efd: { id, flags: p.info.flags, fown: emptyFown(), counter: p.info.eventfd.count, semaphore: p.info.eventfd.semaphore ?? false },
    });
  },
  open: (e) => {
    const f = e.efd;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is an eventfd without its entry`);
    const flags = (f.flags & O_NONBLOCK) | O_CLOEXEC | (f.semaphore ? EFD_SEMAPHORE : 0);
    return { status: 'done', fd: newEventfd(f.counter, flags) };
  },
} satisfies FileKind;
