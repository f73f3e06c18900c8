import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { FdTypes, FileEntrySchema } from '../image/gen/stasis/fdinfo_pb.js';
import { StasisError } from '../errors.js';
import { indexFiles } from './read-images.js';

const reg = (id: number, name: string) => create(FileEntrySchema, { type: FdTypes.REG, id, reg: { id, flags: 2, pos: 0n, name, mode: 0o20666 } });
const tunf = (id: number, netdev = '') => create(FileEntrySchema, { type: FdTypes.TUNF, id, tunf: { id, netdev, nsId: 10 } });
const corrupt = (pattern: RegExp) => (e: unknown) => e instanceof StasisError && e.code === 'E_CORRUPT' && pattern.test(e.message);

test('indexFiles() reads a REG entry and the TUNF entry of its id after it as a tun file and its REG twin', () => {
  const { files, regTwins } = indexFiles([reg(1, '/etc/hosts'), reg(12, '/dev/net/tun'), tunf(12, 'tunx0'), reg(13, '/dev/net/tun'), tunf(13)]);
  assert.deepEqual([...files].map(([id, f]) => [id, f.type]), [[1, FdTypes.REG], [12, FdTypes.TUNF], [13, FdTypes.TUNF]]);
  assert.equal(files.get(12)?.tunf?.netdev, 'tunx0');
  assert.deepEqual([...regTwins].map(([id, f]) => [id, f.reg?.name]), [[12, '/dev/net/tun'], [13, '/dev/net/tun']]);
});

test('indexFiles() refuses an id named twice otherwise, and a TUNF entry without its REG twin before it', () => {
  assert.throws(() => indexFiles([reg(1, '/a'), reg(1, '/b')]), corrupt(/names file 1 twice/));
  assert.throws(() => indexFiles([reg(12, '/dev/net/tun'), tunf(12), tunf(12)]), corrupt(/names file 12 twice/));
  assert.throws(() => indexFiles([tunf(12), reg(12, '/dev/net/tun')]), corrupt(/names file 12 twice/));
  assert.throws(() => indexFiles([tunf(14)]), corrupt(/tun file 14 without a REG entry/));
});
