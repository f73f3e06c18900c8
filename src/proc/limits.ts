// /proc/PID/limits (fs/proc/base.c, proc_pid_limits): a header, then one line per resource in
// RLIMIT_* order, its name padded to 25 columns, then the soft and hard limits (`unlimited`
// for RLIM_INFINITY, else the raw value in decimal) and the unit, if any. The values are the
// kernel's own: what prlimit64() would return, read without asking the task.
import { ProcFormatError } from './proc-format-error.js';

/** The resources' names in RLIMIT_* order, as the kernel prints them (lnames[]). */
const NAMES = [
  'Max cpu time', 'Max file size', 'Max data size', 'Max stack size', 'Max core file size', 'Max resident set',
  'Max processes', 'Max open files', 'Max locked memory', 'Max address space', 'Max file locks', 'Max pending signals',
  'Max msgqueue size', 'Max nice priority', 'Max realtime priority', 'Max realtime timeout',
];
const RLIM_INFINITY = 0xffffffffffffffffn;
const FILE = 'limits';

/** Each resource's soft (`cur`) and hard (`max`) limit, indexed by RLIMIT_*. */
export function parseLimits(text: string): { cur: bigint; max: bigint }[] {
  const lines = text.split('\n').filter((l) => l !== '');
  if (!lines[0]?.startsWith('Limit ')) throw new ProcFormatError(FILE, 'expected the "Limit Soft Limit Hard Limit Units" header', lines[0]);
  const rows = lines.slice(1);
  if (rows.length !== NAMES.length) throw new ProcFormatError(FILE, `expected ${NAMES.length} resources, found ${rows.length}`);
  return rows.map((line, i) => {
    const name = NAMES[i]!;
    if (!line.startsWith(name) || line.charAt(name.length) !== ' ') throw new ProcFormatError(FILE, `expected resource ${i} to be "${name}"`, line);
    const [cur, max] = line.slice(name.length).trim().split(/\s+/); // then the unit, if any
    if (cur === undefined || max === undefined) throw new ProcFormatError(FILE, 'expected a soft and a hard limit', line);
    return { cur: value(cur, line), max: value(max, line) };
  });
}

function value(v: string, line: string): bigint {
  if (v === 'unlimited') return RLIM_INFINITY;
  if (!/^\d+$/.test(v)) throw new ProcFormatError(FILE, `expected a limit, found "${v}"`, line);
  return BigInt(v);
}
