// Time namespaces (CRIU's timens-<id>.img): what CLOCK_MONOTONIC and CLOCK_BOOTTIME read in
// the namespace at the dump (stasis's clocks plus the offsets in /proc/PID/timens_offsets).
// A namespace's offsets can be written only before a task enters it, so the root is not made
// with CLONE_NEWTIME: the stub unshares one for its children, its offsets are set so that both
// clocks carry on from the dumped values, and the root is cloned into it (CRIU does the same).
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { CLONE_NEWTIME, CLOCK_BOOTTIME, CLOCK_MONOTONIC, clockNs } from '../sys/index.js';
import { writeImage, readImage } from '../image/index.js';
import { TimensEntrySchema } from '../image/gen/stasis/timens_pb.js';
import { StasisError } from '../errors.js';
import type { NsKind, NsRestoreCtx } from './ns-kind.js';

const NS = 1_000_000_000n;

/** The offsets of /proc/PID/timens_offsets, in nanoseconds. */
function offsetsOf(pid: number): { monotonic: bigint; boottime: bigint } {
  const out = { monotonic: 0n, boottime: 0n };
  for (const l of fs.readFileSync(`/proc/${pid}/timens_offsets`, 'utf8').trim().split('\n')) {
    const [clock, s, n] = l.trim().split(/\s+/);
    if (clock === 'monotonic' || clock === 'boottime') out[clock] = BigInt(s!) * NS + BigInt(n!);
  }
  return out;
}

const spec = (ns: bigint) => ({ tvSec: ns / NS, tvNsec: ns % NS });

/** `offset` as the kernel takes it: seconds (maybe negative) and nanoseconds in [0, 1e9). */
function offsetText(name: string, ns: bigint): string {
  let s = ns / NS, n = ns % NS;
  if (n < 0n) {
    s -= 1n;
    n += NS;
  }
  return `${name} ${s} ${n}`;
}

/** What the stub writes to its timens_offsets for the namespace `id` of the images, computed now. */
export function timeOffsets(ctx: NsRestoreCtx, id: number): string {
  const e = readImage(ctx.imagesDir, 'timens', id)[0];
  if (!e?.monotonic || !e.boottime) throw new StasisError('E_CORRUPT', `timens-${id}.img has no clocks`);
  const mono = e.monotonic.tvSec * NS + e.monotonic.tvNsec - clockNs(CLOCK_MONOTONIC);
  const boot = e.boottime.tvSec * NS + e.boottime.tvNsec - clockNs(CLOCK_BOOTTIME);
  ctx.log.info(`time namespace ${id}: offsets monotonic ${mono} ns, boottime ${boot} ns`);
  return `${offsetText('monotonic', mono)}\n${offsetText('boottime', boot)}\n`;
}

export const timeNs = {
  name: 'time',
  flag: CLONE_NEWTIME,
  dump: (ctx, pid, id) => {
    const off = offsetsOf(pid);
    const monotonic = clockNs(CLOCK_MONOTONIC) + off.monotonic, boottime = clockNs(CLOCK_BOOTTIME) + off.boottime;
    ctx.note(writeImage(ctx.imagesDir, 'timens', id, [create(TimensEntrySchema, { monotonic: spec(monotonic), boottime: spec(boottime) })]));
  },
  // Made before the root exists (timeOffsets, createRootTask): nothing is left to fill.
  restore: () => {},
} satisfies NsKind;
