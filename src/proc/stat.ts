// /proc/PID/stat (and task/TID/stat): one line, `pid (comm) state ppid ...`, 52 fields
// (man 5 proc_pid_stat). comm is printed raw, parentheses and spaces included, so it runs
// from the first '(' to the LAST ')'. Signal masks here are truncated decimals: use status.
import { ProcFormatError } from './proc-format-error.js';
import { decimal, decimalBig } from './scalars.js';

export interface ProcStat {
  pid: number;
  /** The task's comm as the kernel keeps it, not escaped (15 bytes; longer for kernel threads). */
  comm: string;
  /** R, S, D, T, t, Z, X, I, P... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Controlling terminal as the kernel's dev_t encoding; 0 for none. */
  ttyNr: number;
  tpgid: number;
  /** PF_* flags. */
  flags: number;
  minflt: number;
  cminflt: number;
  majflt: number;
  cmajflt: number;
  /** Clock ticks (sysconf(_SC_CLK_TCK)). */
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
  priority: number;
  nice: number;
  numThreads: number;
  /** Clock ticks since boot at which the task started: with pid, identifies the task. */
  starttime: bigint;
  /** Virtual memory size in bytes. */
  vsize: bigint;
  /** Resident set size in pages. */
  rss: number;
  /** RLIMIT_RSS soft limit in bytes (2^64-1 for unlimited). */
  rsslim: bigint;
  startCode: bigint;
  endCode: bigint;
  startStack: bigint;
  exitSignal: number;
  processor: number;
  rtPriority: number;
  policy: number;
  delayacctBlkioTicks: bigint;
  guestTime: number;
  cguestTime: number;
  startData: bigint;
  endData: bigint;
  startBrk: bigint;
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
  /** Exit status in waitpid() form; 0 while the task runs. */
  exitCode: number;
}

const FILE = 'stat';

export function parseStat(text: string): ProcStat {
  const line = text.endsWith('\n') ? text.slice(0, -1) : text;
  const open = line.indexOf(' (');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) throw new ProcFormatError(FILE, 'expected "pid (comm) state ..."', line);
  // f[n] is field n of proc_pid_stat(5), counting from 1; f[1] and f[2] are pid and comm.
  const f: (string | undefined)[] = [undefined, line.slice(0, open), line.slice(open + 2, close), ...line.slice(close + 2).split(' ')];
  if (f.length < 53) throw new ProcFormatError(FILE, `expected 52 fields, got ${f.length - 1}`, line);
  const int = (n: number, what: string): number => decimal(f[n], FILE, what, line);
  const big = (n: number, what: string): bigint => decimalBig(f[n], FILE, what, line);
  const state = f[3] ?? '';
  if (state.length !== 1) throw new ProcFormatError(FILE, `state is "${state}", not one character`, line);
  return {
    pid: int(1, 'pid'),
    comm: f[2] ?? '',
    state,
    ppid: int(4, 'ppid'),
    pgrp: int(5, 'pgrp'),
    session: int(6, 'session'),
    ttyNr: int(7, 'tty_nr'),
    tpgid: int(8, 'tpgid'),
    flags: int(9, 'flags'),
    minflt: int(10, 'minflt'),
    cminflt: int(11, 'cminflt'),
    majflt: int(12, 'majflt'),
    cmajflt: int(13, 'cmajflt'),
    utime: int(14, 'utime'),
    stime: int(15, 'stime'),
    cutime: int(16, 'cutime'),
    cstime: int(17, 'cstime'),
    priority: int(18, 'priority'),
    nice: int(19, 'nice'),
    numThreads: int(20, 'num_threads'),
    starttime: big(22, 'starttime'),
    vsize: big(23, 'vsize'),
    rss: int(24, 'rss'),
    rsslim: big(25, 'rsslim'),
    startCode: big(26, 'startcode'),
    endCode: big(27, 'endcode'),
    startStack: big(28, 'startstack'),
    exitSignal: int(38, 'exit_signal'),
    processor: int(39, 'processor'),
    rtPriority: int(40, 'rt_priority'),
    policy: int(41, 'policy'),
    delayacctBlkioTicks: big(42, 'delayacct_blkio_ticks'),
    guestTime: int(43, 'guest_time'),
    cguestTime: int(44, 'cguest_time'),
    startData: big(45, 'start_data'),
    endData: big(46, 'end_data'),
    startBrk: big(47, 'start_brk'),
    argStart: big(48, 'arg_start'),
    argEnd: big(49, 'arg_end'),
    envStart: big(50, 'env_start'),
    envEnd: big(51, 'env_end'),
    exitCode: int(52, 'exit_code'),
  };
}
