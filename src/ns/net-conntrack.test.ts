import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readConntrackFile } from './net-conntrack.js';
import { StasisError } from '../errors.js';

// CRIU 4.2's netns-ct-9.img of zdtm static/socket-tcp-ipt-nfconntrack: the one ESTABLISHED entry
// 127.0.0.1:43028 -> 127.0.0.1:8880, as ctnetlink sent it (timeout at byte 160, TCP state at 176,
// the original source port at 60 and the reply's destination port at 120).
const CT = Buffer.from('d400000000010200686000006a0a0000020000003400018014000180080001007f000001080002007f0000011c000280050001000600000006000200a81400000600030022b000003400028014000180080001007f000001080002007f0000011c00028005000100060000000600020022b0000006000300a8140000080003000000000e080008000000000008000c0080cbd49308000b0000000001080007000006977f300004802c0001800500010003000000050002000a000000050003000a00000006000400230000000600050023000000', 'hex');

/** The entries readConntrackFile() takes from a namespace whose netns-exp-9.img holds `exp`. */
function read(exp: Buffer, ct = CT): ReturnType<typeof readConntrackFile> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-ct-'));
  try {
    fs.writeFileSync(path.join(dir, 'netns-ct-9.img'), ct);
    fs.writeFileSync(path.join(dir, 'netns-exp-9.img'), exp);
    return readConntrackFile(dir, 9);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const edited = (at: number, bytes: string, b = CT) => {
  const c = Buffer.from(b);
  Buffer.from(bytes, 'hex').copy(c, at);
  return c;
};
const refusal = (code: string, pattern: RegExp) => (e: unknown) => e instanceof StasisError && e.code === code && pattern.test(e.message);

test('CRIU 4.2\'s netns-exp image, which holds the conntrack table a second time, is taken when it is the table of netns-ct', () => {
  const [e, ...more] = read(CT);
  assert.equal(more.length, 0);
  assert.deepEqual([e!.orig.sport, e!.orig.dport, e!.tcp?.state, e!.timeout, e!.status], [43028, 8880, 3, 0x6977f, 0xe]);
  // Dumped just after: its timeouts may have run down a little.
  assert.equal(read(edited(160, '0006977d')).length, 1);
});

test('stasis\'s own empty netns-exp image is taken with any table', () => {
  assert.equal(read(Buffer.alloc(0)).length, 1);
  assert.deepEqual(read(Buffer.alloc(0), Buffer.alloc(0)), []);
});

test('a netns-exp copy that is not the table of netns-ct is refused, naming what differs', () => {
  assert.throws(() => read(edited(176, '04')), refusal('E_UNSUPPORTED', /netns-exp-9\.img holds connection tracking entries .* not the table of netns-ct-9\.img: its entry 127\.0\.0\.1:43028 -> 127\.0\.0\.1:8880 differs: it is in TCP state 4/));
  assert.throws(() => read(edited(160, '00069780')), refusal('E_UNSUPPORTED', /its timeout is 432000 s, was 431999 s/));
  const other = edited(120, 'a815', edited(60, 'a815'));
  assert.throws(() => read(Buffer.concat([CT, other])), refusal('E_UNSUPPORTED', /it has entry 127\.0\.0\.1:43029 -> 127\.0\.0\.1:8880, which the first lacks/));
  assert.throws(() => read(other), refusal('E_UNSUPPORTED', /it lacks entry 127\.0\.0\.1:43028 -> 127\.0\.0\.1:8880/));
  assert.throws(() => read(CT, Buffer.alloc(0)), refusal('E_UNSUPPORTED', /it has entry 127\.0\.0\.1:43028/));
  assert.throws(() => read(Buffer.concat([CT, CT])), refusal('E_UNSUPPORTED', /it holds an entry twice/));
});

test('a netns-exp image holding a real expectation (ctnetlink_exp\'s IPCTNL_MSG_EXP_NEW) is refused, and a truncated one is corrupt', () => {
  const exp = Buffer.alloc(20);
  exp.writeUInt32LE(20, 0);
  exp.writeUInt16LE(2 << 8, 4); // NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_NEW
  exp.writeUInt8(2, 16);
  assert.throws(() => read(exp), refusal('E_UNSUPPORTED', /netns-exp-9\.img holds conntrack expectations, which stasis cannot restore/));
  assert.throws(() => read(Buffer.concat([CT, exp])), refusal('E_UNSUPPORTED', /holds conntrack expectations/));
  assert.throws(() => read(CT.subarray(0, 100)), refusal('E_CORRUPT', /netns-exp-9\.img cannot be read/));
  assert.throws(() => read(Buffer.alloc(0), exp), refusal('E_CORRUPT', /netns-ct-9\.img cannot be read: .*a netlink message of type 0x200/));
});
