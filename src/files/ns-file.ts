// Open namespace files (/proc/PID/ns/KIND, CRIU's NsFileEntry). stasis restores a tree in
// the namespaces it runs in, so a namespace file of one of those comes back as stasis's own
// /proc/self/ns/KIND; one of any other namespace (a container's, one kept alive by the fd)
// is refused, it could not be made again.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { openat } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { FileKind } from './kind.js';

// The CLONE_NEW* flag of each kind (ns_cflag), as CRIU writes it.
const KINDS: Record<string, number> = {
  mnt: 0x00020000, cgroup: 0x02000000, uts: 0x04000000, ipc: 0x08000000, user: 0x10000000, pid: 0x20000000, net: 0x40000000,
  time: 0x00000080,
};
const NS_LINK = /^(\w+):\[(\d+)\]$/;
const O_CLOEXEC = 0o2000000;

export const nsFile = {
  name: 'namespace file',
  type: FdTypes.NS,
  detect: (p) => NS_LINK.test(p.link) && KINDS[NS_LINK.exec(p.link)![1]!] !== undefined,
  dump: (p, ctx, id) => {
    const kind = NS_LINK.exec(p.link)![1]!;
    // pid_for_children and time_for_children read like pid and time.
    const own = [kind, `${kind}_for_children`].map((k) => {
      try {
        return fs.readlinkSync(`/proc/self/ns/${k}`);
      } catch {
        return '';
      }
    });
    if (!own.includes(p.link)) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump fd ${p.fd} of pid ${p.pid}: it is the file of ${kind} namespace ${p.link}, not one stasis runs in; stasis cannot restore namespace files of other namespaces yet`);
    }
    const nsId = ctx.nsIdOf?.(p.link) ?? 0;
    return create(FileEntrySchema, { type: FdTypes.NS, id, nsf: { id, nsId, nsCflag: KINDS[kind]!, flags: p.info.flags } });
  },
  open: (e) => {
    const f = e.nsf;
    if (!f) throw new StasisError('E_CORRUPT', `File ${e.id} is a namespace file without its entry`);
    const kind = Object.keys(KINDS).find((k) => KINDS[k] === f.nsCflag);
    if (!kind) throw new StasisError('E_UNSUPPORTED', `Cannot restore namespace file ${e.id}: namespace flag 0x${f.nsCflag.toString(16)} is unknown`);
    return { status: 'done', fd: openat(-100, `/proc/self/ns/${kind}`, (f.flags & 3) | O_CLOEXEC) };
  },
} satisfies FileKind;
