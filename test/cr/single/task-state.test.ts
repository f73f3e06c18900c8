// Task state zdtm checks only in part: each thread's scheduling (policy, SCHED_RESET_ON_FORK,
// real-time priority, nice, CPU affinity), the three itimers with their intervals, and a
// child stopped by job control, which comes back stopped by the same signal, its stop not
// yet collected by its parent, and goes on when continued.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Workload, compileWorkload, checkpointRestore, assertPassed, assertDumpRefused, waitFor, sleepMs } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { spawnTask, kill, waitPid } from '../../../src/sys/index.js';

/** Per thread, from outside: state, nice, rt_priority, policy (stat fields 3, 19, 40, 41) and the CPUs it may use. */
function schedOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpus = /Cpus_allowed_list:\s+(\S+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1];
    out[tid] = `${f[0] === 'T' ? 'stopped' : 'running'} nice ${f[16]} rt_priority ${f[37]} policy ${f[38]} cpus ${cpus}`;
  }
  return out;
}

const childrenOf = (pid: number) => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);

test('scheduling of every thread, itimers and a child stopped by SIGTSTP come back exactly', async () => {
  const w = new Workload('taskstate', compileWorkload('taskstate', ['-pthread'])).start();
  const kids = childrenOf(w.pid);
  assert.equal(kids.length, 2);
  const before = [w.pid, ...kids].map(schedOf);
  assert.match(before[2]![kids[1]!]!, /^stopped /, 'child D is not stopped before the dump');
  const { images } = await checkpointRestore(w);
  assert.deepEqual([w.pid, ...kids].map(schedOf), before);
  // In CRIU's fields: the stopped child's task_state and stop signal, each thread's policy.
  const d = readImage(images, 'core', kids[1]!)[0]!.tc!;
  assert.deepEqual([d.taskState, d.stopSigno], [3, 20]);
  const policies = fs.readdirSync(images).filter((f) => /^core-\d+\.img$/.test(f))
    .map((f) => readImage(images, 'core', Number(/\d+/.exec(f)![0]))[0]!.threadCore!.schedPolicy).sort((a, b) => (a ?? 0) - (b ?? 0));
  // main and D SCHED_OTHER, B SCHED_BATCH, C SCHED_IDLE, A SCHED_FIFO | SCHED_RESET_ON_FORK.
  assert.deepEqual(policies, [0, 0, 3, 5, 0x40000001]);
  w.go();
  assertPassed(w.finish());
});

test('a process stopped by SIGSTOP with another SIGSTOP queued comes back stopped, and runs on SIGCONT', async () => {
  const w = new Workload('stopped-counter', compileWorkload('counter')).start();
  const state = () => /\) (\S) /.exec(fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8'))![1];
  kill(w.pid, 19);
  waitFor('the stop', () => state() === 'T');
  kill(w.pid, 19); // queued: a stopped task does not take it
  assert.match(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8'), /ShdPnd:\s+0*40000\n/);
  await checkpointRestore(w);
  const log = w.file('counter.log');
  const size = fs.statSync(log).size;
  sleepMs(300);
  assert.equal(state(), 'T');
  assert.equal(fs.statSync(log).size, size, 'the restored counter counts while stopped');
  kill(w.pid, 18);
  waitFor('it to count again', () => fs.statSync(log).size > size);
  w.go();
  assertPassed(w.finish());
});

test('a thread under SCHED_DEADLINE is refused at dump time, the task left running', async (t) => {
  const pid = spawnTask(['/usr/bin/chrt', '--deadline', '--sched-runtime', '1000000', '--sched-deadline', '10000000', '--sched-period', '10000000', '0', '/usr/bin/sleep', '1000'], {});
  try {
    const ok = waitFor('chrt to exec sleep', () => {
      const exe = fs.readlinkSync(`/proc/${pid}/exe`);
      return exe.endsWith('/sleep') || !fs.existsSync(`/proc/${pid}/stat`) ? exe : false;
    });
    if (!ok.endsWith('/sleep')) return t.skip('this kernel refuses SCHED_DEADLINE here');
    await assertDumpRefused({ pid, name: 'deadline' } as Workload, 'E_UNSUPPORTED', [/SCHED_DEADLINE/, new RegExp(`${pid}`)]);
    assert.match(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) S /);
  } finally {
    kill(pid, 9);
    waitPid(pid);
  }
});

/** Per thread, from outside: its seccomp mode and number of filters. */
function seccompOf(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/task`).sort().map((tid) => {
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    return `${/Seccomp:\s+(\d+)/.exec(st)?.[1]} ${/Seccomp_filters:\s+(\d+)/.exec(st)?.[1]}`;
  });
}

test('seccomp filters shared by TSYNC and a thread\'s own come back: each thread gets its errnos, TSYNC fails and works as it did', async () => {
  const w = new Workload('seccomp', compileWorkload('seccomp', ['-pthread'])).start();
  const before = seccompOf(w.pid);
  assert.deepEqual(before, ['2 1', '2 2']);
  const { images } = await checkpointRestore(w);
  assert.deepEqual(seccompOf(w.pid), before);
  // seccomp.img: each thread's chain, newest first (CRIU's layout), B's LOG flag kept.
  const filters = readImage(images, 'seccomp', undefined)[0]!.seccompFilters;
  assert.deepEqual(filters.map((f) => [f.filter.length / 8, f.flags]), [[4, 0], [4, 2], [4, 0]]);
  w.go();
  assertPassed(w.finish());
});

test('a task traced by another of the tree is refused at dump time naming its tracer, the relation left as it was', async () => {
  const w = new Workload('traced', compileWorkload('traced')).start();
  const child = childrenOf(w.pid)[0]!;
  // The tracee keeps its tracer (the parent): assertDumpRefused's untraced check is for the parent only.
  await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`pid ${child}`), new RegExp(`traced by pid ${w.pid}`), /ptrace/]);
  assert.match(fs.readFileSync(`/proc/${child}/status`, 'utf8'), new RegExp(`TracerPid:\\s+${w.pid}\\n`));
  w.go();
  assertPassed(w.finish());
});
