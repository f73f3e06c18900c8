// signalfds: the signal set from fdinfo, re-created in stasis. The signals themselves are
// the task's pending signals, restored with the task.
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { signalfd as newSignalfd } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';
import { emptyFown } from './reg.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;

export const signalfd = {
  name: 'signalfd',
  type: FdTypes.SIGNALFD,
  detect: (p) => p.link === 'anon_inode:[signalfd]',
  dump: (p, _ctx, id) => {
    if (!p.info.signalfd) throw new StasisError('E_DUMP_FAILED', `Cannot read the signal set of signalfd ${p.fd} of pid ${p.pid} from fdinfo`);
    return create(FileEntrySchema, {
      type: FdTypes.SIGNALFD,
      id,
      sgfd: { id, flags: p.info.flags, fown: emptyFown(), sigmask: p.info.signalfd.sigmask },
    });
  },
  open: (e) => {
    const f = e.sgfd;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is a signalfd without its entry`);
    return { status: 'done', fd: newSignalfd(f.sigmask, (f.flags & O_NONBLOCK) | O_CLOEXEC) };
  },
} satisfies FileKind;
