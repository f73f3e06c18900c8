import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStat } from './stat.js';
import { ProcFormatError } from './proc-format-error.js';

// Captured on Linux 6.18: a task that renamed itself to ") (x) y" with PR_SET_NAME.
const TRICKY =
  '3872 () (x) y) S 3861 3861 2223 0 -1 4194560 96 0 0 0 0 0 0 0 20 0 1 0 639917 6664192 345 18446744073709551615 94343927619584 94343927622869 140736033554960 0 0 0 65536 6 0 1 0 0 17 0 0 0 0 0 0 94343927631312 94343927632208 94344438992896 140736033561138 140736033561142 140736033561142 140736033562612 0\n';
const ZOMBIE =
  '5011 (python3) Z 4970 4956 2223 0 -1 4227148 218 0 0 0 0 0 0 0 20 0 1 0 687206 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 768\n';
const KTHREAD =
  '2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 30 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n';

test('parseStat() finds comm up to the last parenthesis when comm holds ") ("', () => {
  const s = parseStat(TRICKY);
  assert.equal(s.pid, 3872);
  assert.equal(s.comm, ') (x) y');
  assert.equal(s.state, 'S');
  assert.equal(s.ppid, 3861);
  assert.equal(s.pgrp, 3861);
  assert.equal(s.session, 2223);
});

test('parseStat() reads the scheduling and accounting fields', () => {
  const s = parseStat(TRICKY);
  assert.equal(s.ttyNr, 0);
  assert.equal(s.tpgid, -1);
  assert.equal(s.flags, 4194560);
  assert.equal(s.minflt, 96);
  assert.equal(s.nice, 0);
  assert.equal(s.priority, 20);
  assert.equal(s.numThreads, 1);
  assert.equal(s.starttime, 639917n);
  assert.equal(s.vsize, 6664192n);
  assert.equal(s.rss, 345);
  assert.equal(s.exitSignal, 17);
  assert.equal(s.processor, 0);
});

test('parseStat() keeps the unlimited rsslim of 2^64-1 exact', () => {
  assert.equal(parseStat(TRICKY).rsslim, 18446744073709551615n);
});

test('parseStat() reads the memory layout of fields 26-28 and 45-51', () => {
  const s = parseStat(TRICKY);
  assert.equal(s.startCode, 94343927619584n);
  assert.equal(s.endCode, 94343927622869n);
  assert.equal(s.startStack, 140736033554960n);
  assert.equal(s.startData, 94343927631312n);
  assert.equal(s.endData, 94343927632208n);
  assert.equal(s.startBrk, 94344438992896n);
  assert.equal(s.argStart, 140736033561138n);
  assert.equal(s.argEnd, 140736033561142n);
  assert.equal(s.envStart, 140736033561142n);
  assert.equal(s.envEnd, 140736033562612n);
  assert.equal(s.exitCode, 0);
});

test('parseStat() reads the exit code of a zombie', () => {
  const s = parseStat(ZOMBIE);
  assert.equal(s.state, 'Z');
  assert.equal(s.exitCode, 3 << 8);
  assert.equal(s.vsize, 0n);
  assert.equal(s.startCode, 0n);
});

test('parseStat() reads a kernel thread, whose addresses are all zero', () => {
  const s = parseStat(KTHREAD);
  assert.deepEqual([s.pid, s.comm, s.ppid, s.flags & 0x00200000], [2, 'kthreadd', 0, 0x00200000]);
  assert.equal(s.envEnd, 0n);
});

test('parseStat() keeps spaces and a newline inside comm', () => {
  const s = parseStat(TRICKY.replace(') (x) y', 'a b\n(c)'));
  assert.equal(s.comm, 'a b\n(c)');
  assert.equal(s.ppid, 3861);
});

test('parseStat() refuses a line with fields missing', () => {
  assert.throws(() => parseStat('1 (init) S 0 0 0'), (err: unknown) => err instanceof ProcFormatError && /expected 52 fields, got 6/.test(err.message));
  assert.throws(() => parseStat(''), ProcFormatError);
  assert.throws(() => parseStat(TRICKY.replace(' 3861 3861 ', ' x 3861 ')), /ppid is "x"/);
});
