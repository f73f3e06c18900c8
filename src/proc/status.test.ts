import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStatus } from './status.js';
import { ProcFormatError } from './proc-format-error.js';

// Captured on Linux 6.18 from a test program inside system(), uids edited.
const TASK = `Name:	) (x) y
Umask:	0022
State:	S (sleeping)
Tgid:	3872
Ngid:	0
Pid:	3872
PPid:	3861
TracerPid:	0
Uid:	0	1000	2000	3000
Gid:	0	0	0	0
FDSize:	256
Groups:	 
NStgid:	3872
NSpid:	3872
NSpgid:	3861
NSsid:	2223
Kthread:	0
VmPeak:	    6544 kB
VmSize:	    6508 kB
VmLck:	      16 kB
VmPin:	       0 kB
VmHWM:	    1496 kB
VmRSS:	    1496 kB
RssAnon:	      96 kB
RssFile:	    1380 kB
RssShmem:	      20 kB
VmData:	    4204 kB
VmStk:	     148 kB
VmExe:	       4 kB
VmLib:	    1528 kB
VmPTE:	      44 kB
VmSwap:	       0 kB
HugetlbPages:	       0 kB
CoreDumping:	0
THP_enabled:	1
untag_mask:	0xffffffffffffffff
Threads:	1
SigQ:	0/96365
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000010000
SigIgn:	0000000000000006
SigCgt:	0000000000000000
CapInh:	0000000000000000
CapPrm:	000001fffeffffff
CapEff:	000001fffeffffff
CapBnd:	000001fffeffffff
CapAmb:	0000000000000000
NoNewPrivs:	0
Seccomp:	0
Seccomp_filters:	0
Speculation_Store_Bypass:	vulnerable
SpeculationIndirectBranch:	always enabled
Cpus_allowed:	3
Cpus_allowed_list:	0-1
Mems_allowed:	00000000,00000001
Mems_allowed_list:	0
voluntary_ctxt_switches:	2
nonvoluntary_ctxt_switches:	0
`;

// A zombie: no Umask, no memory lines.
const ZOMBIE = TASK.replace('Umask:\t0022\n', '')
  .replace('State:\tS (sleeping)', 'State:\tZ (zombie)')
  .replace(/^(Vm|Rss|Hugetlb).*\n/gm, '');

test('parseStatus() reads identity, ids and the umask as octal', () => {
  const s = parseStatus(TASK);
  assert.equal(s.name, ') (x) y');
  assert.equal(s.umask, 0o22);
  assert.deepEqual([s.state, s.stateName], ['S', 'sleeping']);
  assert.deepEqual([s.tgid, s.pid, s.ppid, s.tracerPid, s.ngid], [3872, 3872, 3861, 0, 0]);
  assert.deepEqual(s.uid, { real: 0, effective: 1000, saved: 2000, fs: 3000 });
  assert.deepEqual(s.gid, { real: 0, effective: 0, saved: 0, fs: 0 });
  assert.equal(s.fdSize, 256);
  assert.deepEqual(s.groups, []);
  assert.equal(s.threads, 1);
  assert.equal(s.kthread, false);
});

test('parseStatus() reads the pid namespace ids', () => {
  const s = parseStatus(TASK.replace('NSpid:\t3872', 'NSpid:\t3872\t1\t7'));
  assert.deepEqual(s.nsPid, [3872, 1, 7]);
  assert.deepEqual(s.nsTgid, [3872]);
  assert.deepEqual(s.nsPgid, [3861]);
  assert.deepEqual(s.nsSid, [2223]);
});

test('parseStatus() reads signal masks and capabilities as 64-bit BigInts', () => {
  const s = parseStatus(TASK.replace('SigCgt:\t0000000000000000', 'SigCgt:\tfffffffe7ffbfeff'));
  // Bit sig - 1: system() blocked SIGCHLD (17) and ignored SIGINT (2) and SIGQUIT (3).
  assert.equal(s.sigBlk, 1n << 16n);
  assert.equal(s.sigIgn, (1n << 1n) | (1n << 2n));
  assert.equal(s.sigCgt, 0xfffffffe7ffbfeffn);
  assert.equal(s.capPrm, 0x1fffeffffffn);
  assert.equal(s.capAmb, 0n);
  assert.deepEqual(s.sigQ, { queued: 0, limit: 96365 });
  assert.equal(s.untagMask, 0xffffffffffffffffn);
});

test('parseStatus() reads the seccomp and speculation lines', () => {
  const s = parseStatus(TASK.replace('Seccomp:\t0', 'Seccomp:\t2').replace('Seccomp_filters:\t0', 'Seccomp_filters:\t3'));
  assert.equal(s.noNewPrivs, false);
  assert.equal(s.seccomp, 2);
  assert.equal(s.seccompFilters, 3);
  assert.equal(s.speculationStoreBypass, 'vulnerable');
  assert.equal(s.speculationIndirectBranch, 'always enabled');
  assert.equal(s.raw.get('Cpus_allowed_list'), '0-1');
});

test('parseStatus() gives memory counters in bytes', () => {
  const vm = parseStatus(TASK).vm;
  assert.equal(vm?.vmRss, 1496 * 1024);
  assert.equal(vm?.vmLck, 16 * 1024);
  assert.equal(vm?.rssShmem, 20 * 1024);
  assert.equal(vm?.hugetlbPages, 0);
});

test('parseStatus() reads a zombie, which has no umask and no memory', () => {
  const s = parseStatus(ZOMBIE);
  assert.deepEqual([s.state, s.stateName], ['Z', 'zombie']);
  assert.equal(s.umask, undefined);
  assert.equal(s.vm, null);
});

test('parseStatus() reads supplementary groups and a traced stop', () => {
  const s = parseStatus(TASK.replace('Groups:\t ', 'Groups:\t4 24 27 ').replace('State:\tS (sleeping)', 'State:\tt (tracing stop)'));
  assert.deepEqual(s.groups, [4, 24, 27]);
  assert.deepEqual([s.state, s.stateName], ['t', 'tracing stop']);
});

test('parseStatus() undoes the escapes of Name and keeps its leading space', () => {
  const s = parseStatus(TASK.replace('Name:\t) (x) y', 'Name:\t a\\nb\\\\c'));
  assert.equal(s.name, ' a\nb\\c');
});

test('parseStatus() reads the x86 shadow stack features', () => {
  const s = parseStatus(`${TASK}x86_Thread_features:\tshstk wrss\nx86_Thread_features_locked:\t\n`);
  assert.deepEqual(s.x86ThreadFeatures, ['shstk', 'wrss']);
  assert.deepEqual(s.x86ThreadFeaturesLocked, []);
});

test('parseStatus() refuses a file without its Pid line', () => {
  assert.throws(() => parseStatus(TASK.replace(/^Pid:.*\n/m, '')), (err: unknown) => err instanceof ProcFormatError && /Pid line is missing/.test(err.message));
  assert.throws(() => parseStatus(''), ProcFormatError);
});
