// io_uring instances: refused, with the reason. An instance's state lives in the kernel and
// is not readable from outside: its submission and completion rings are memory the kernel
// maps into the task (the ring heads are in fdinfo, the requests in flight are not), its
// registered files and buffers, its personality credentials, an SQPOLL thread. Nothing
// recreates requests in flight, and CRIU does not restore io_uring either.
import { FdTypes } from '../image/gen/stasis/fdinfo_pb.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';

export const ioUring = {
  name: 'io_uring',
  // Never written to an image: CRIU's io_uring.proto has no fd type in fdinfo.proto's list.
  type: FdTypes.UND,
  detect: (p) => p.link === 'anon_inode:[io_uring]',
  dump: (p) => {
    throw new StasisError('E_UNSUPPORTED',
      `Cannot dump fd ${p.fd} of pid ${p.pid}: it is an io_uring instance (anon_inode:[io_uring]); its rings, the requests in flight and ` +
      'the files and buffers registered with it live in the kernel, where nothing reads them back, so stasis cannot restore it');
  },
  open: (e) => {
    throw new StasisError('E_UNSUPPORTED', `Cannot restore file ${e.id}: stasis cannot restore io_uring instances`);
  },
} satisfies FileKind;
