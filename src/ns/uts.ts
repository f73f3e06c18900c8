// UTS namespaces (CRIU's utsns-<id>.img): the host and domain names, read through
// /proc/sys/kernel in the namespace and set again with sethostname(2)/setdomainname(2) from
// within it (no write to /proc/sys, which a container host may mount read-only).
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { inNamespace, setUtsNames, CLONE_NEWUTS } from '../sys/index.js';
import { writeImage, readImage } from '../image/index.js';
import { UtsnsEntrySchema } from '../image/gen/stasis/utsns_pb.js';
import { StasisError } from '../errors.js';
import type { NsKind } from './ns-kind.js';

const read = (name: string) => fs.readFileSync(`/proc/sys/kernel/${name}`, 'utf8').replace(/\n$/, '');

export const utsNs = {
  name: 'uts',
  flag: CLONE_NEWUTS,
  dump: (ctx, pid, id) => {
    const [nodename, domainname] = inNamespace(`/proc/${pid}/ns/uts`, 'uts', CLONE_NEWUTS, () => [read('hostname'), read('domainname')]);
    ctx.log.info(`uts namespace ${id}: hostname ${nodename}, domainname ${domainname}`);
    ctx.note(writeImage(ctx.imagesDir, 'utsns', id, [create(UtsnsEntrySchema, { nodename: nodename!, domainname: domainname! })]));
  },
  restore: (ctx, hostPid, id) => {
    const e = readImage(ctx.imagesDir, 'utsns', id)[0];
    if (!e) throw new StasisError('E_CORRUPT', `utsns-${id}.img is empty`);
    inNamespace(`/proc/${hostPid}/ns/uts`, 'uts', CLONE_NEWUTS, () => setUtsNames(e.nodename, e.domainname));
  },
} satisfies NsKind;
