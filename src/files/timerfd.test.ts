// A timerfd entry as CRIU 4.2 writes an overdue periodic timer (disarmed, interval kept,
// expirations to read) opens armed one interval ahead, with its expirations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { timerfd } from './timerfd.js';
import { timerfdGettime, closeFd } from '../sys/index.js';

const entry = (vsec: bigint, isec: bigint, ticks: bigint) => create(FileEntrySchema, {
  type: FdTypes.TIMERFD, id: 9,
  tfd: { id: 9, flags: 0o4002, fown: { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 }, clockid: 1, ticks, settimeFlags: 0, vsec, vnsec: 0n, isec, insec: 0n },
});

function opened(e: ReturnType<typeof entry>): number {
  const r = timerfd.open(e);
  assert.equal(r.status, 'done');
  return (r as { fd: number }).fd;
}

test('an overdue periodic timerfd from a CRIU image is armed one interval ahead, its expirations kept', () => {
  const fd = opened(entry(0n, 10n, 1n));
  try {
    const t = timerfdGettime(fd);
    assert.equal(t.interval.sec, 10n);
    assert.ok(t.value.sec >= 9n && t.value.sec <= 10n, `next expiration in ${t.value.sec} s`);
    const b = Buffer.alloc(8);
    assert.equal(fs.readSync(fd, b, 0, 8, null), 8);
    assert.equal(b.readBigUInt64LE(0), 1n, 'the expiration not yet read');
  } finally {
    closeFd(fd);
  }
});

test('a disarmed timerfd with nothing to read stays disarmed', () => {
  const fd = opened(entry(0n, 10n, 0n));
  try {
    const t = timerfdGettime(fd);
    assert.deepEqual([t.value.sec, t.value.nsec], [0n, 0]);
  } finally {
    closeFd(fd);
  }
});
