// The fds of a frozen task: each one's open file object is named through FileIds (shared
// objects get one id), new objects are described once by their kind, and every fd gets an
// FdinfoEntry naming its object.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdinfoEntrySchema, type FdinfoEntry, type FileEntry } from '../image/gen/stasis/fdinfo_pb.js';
import type { TtyInfoEntry } from '../image/gen/stasis/tty_pb.js';
import { parseFdinfo } from '../proc/index.js';
import { FILE_KINDS, FileIds, ttyInfo, type DumpFileCtx, type FdProbe } from '../files/index.js';
import { StasisError } from '../errors.js';

const O_CLOEXEC = 0o2000000;

export interface DumpedFds {
  fdinfos: FdinfoEntry[];
  files: FileEntry[];
  ttyInfos: TtyInfoEntry[];
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

export function dumpFds(ctx: DumpFileCtx, sid: number, pgrp: number): DumpedFds {
  const out: DumpedFds = { fdinfos: [], files: [], ttyInfos: [] };
  const fds = fs.readdirSync(`/proc/${ctx.pid}/fd`).map(Number).sort((a, b) => a - b);
  for (const fd of fds) {
    const p = probeFd(ctx.pid, fd);
    const kind = FILE_KINDS.find((k) => k.detect(p, ctx));
    if (!kind) {
      throw new StasisError('E_UNSUPPORTED_FD', `Cannot dump fd ${fd} of pid ${ctx.pid}: ${p.link} is a kind of file stasis does not support yet`);
    }
    const { id, isNew } = ctx.ids.lookup(FileIds.genid(p.stat.dev, p.stat.ino, p.info.pos), ctx.pid, fd);
    if (isNew) {
      const probe = { ...p, info: { ...p.info, flags: p.info.flags & ~O_CLOEXEC } };
      const entries = [kind.dump(probe, ctx, id)].flat();
      out.files.push(...entries);
      if (entries.some((e) => e.tty)) out.ttyInfos.push(ttyInfo(id, p.stat.rdev, sid, pgrp));
    }
    ctx.locks?.add(p, id);
    out.fdinfos.push(create(FdinfoEntrySchema, { id, flags: p.info.flags & O_CLOEXEC ? 1 : 0, type: kind.type, fd }));
  }
  return out;
}
