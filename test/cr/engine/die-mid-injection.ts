// A tracer that dies for real (SIGKILL, where inject-death.test.ts lets go with
// PTRACE_DETACH): it freezes a task as a dump does, injects, and kills itself at the step
// named on its command line. Without arguments (node --test runs every file) it does nothing.
import { freeze } from '../../../src/dump/freeze.js';
import { Injector } from '../../../src/sys/index.js';

const [pid, at] = process.argv.slice(2);
if (pid && at) {
  const f = freeze(Number(pid));
  const inj = new Injector(f.pid, { onStep: (s) => {
    if (s === at) process.kill(process.pid, 'SIGKILL');
  } });
  inj.must('getpid');
  inj.callMany(Array.from({ length: 10 }, () => ['getppid', []] as const));
  inj.put(Buffer.alloc(100_000, 1));
  inj.must('getppid');
  inj.end();
  process.exit(3); // the step never came
}
