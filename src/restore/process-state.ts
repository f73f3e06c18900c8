// Process-wide settings outside the address space and the credentials: personality,
// THP-disable, loginuid (asked of the task itself) and oom_score_adj (written by stasis).
// Each is set only when the new task does not have the dumped value already.
import fs from 'node:fs';
import { failedWith, type Injector } from '../sys/index.js';
import { StasisError } from '../errors.js';

const PR_SET_THP_DISABLE = 41, PR_GET_THP_DISABLE = 42;
const AT_FDCWD = -100, O_WRONLY = 1, O_CLOEXEC = 0o2000000;

export interface ProcessState {
  personality: number;
  thpDisabled: boolean;
  /** Absent in images of kernels without audit (no /proc/PID/loginuid). */
  loginuid?: number;
  oomScoreAdj?: number;
}

function readOr(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * After the address space is rebuilt (READ_IMPLIES_EXEC would add PROT_EXEC to every
 * mapping made under it) and before the threads are cloned (they inherit personality and
 * loginuid) and before the credentials drop (loginuid needs CAP_AUDIT_CONTROL).
 */
export function restoreProcessState(inj: Injector, s: ProcessState): void {
  const pid = inj.pid;
  const fail = (what: string, r: bigint) => {
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot restore the ${what} of pid ${pid}: ${failedWith(r)}`);
    return r;
  };
  const personality = parseInt(readOr(`/proc/${pid}/personality`) ?? '0', 16);
  if (personality !== s.personality) fail('personality', inj.call('personality', s.personality));

  const thp = fail('THP-disable flag', inj.call('prctl', PR_GET_THP_DISABLE, 0, 0, 0, 0)) !== 0n;
  if (thp !== s.thpDisabled) fail('THP-disable flag', inj.call('prctl', PR_SET_THP_DISABLE, s.thpDisabled ? 1 : 0, 0, 0, 0));

  const loginuid = readOr(`/proc/${pid}/loginuid`);
  if (s.loginuid !== undefined && loginuid !== String(s.loginuid)) {
    if (loginuid === undefined) {
      throw new StasisError('E_UNSUPPORTED', `Cannot restore the loginuid ${s.loginuid} of pid ${pid}: this kernel has no /proc/PID/loginuid`);
    }
    // Only a task may set its own loginuid (proc_loginuid_write).
    inj.resetScratch();
    const fd = fail('loginuid (open)', inj.call('openat', AT_FDCWD, inj.putString('/proc/self/loginuid'), O_WRONLY | O_CLOEXEC, 0));
    const text = Buffer.from(String(s.loginuid));
    const n = inj.call('write', fd, inj.put(text), text.length);
    inj.call('close', fd);
    fail(`loginuid ${s.loginuid}`, n);
  }

  if (s.oomScoreAdj !== undefined && readOr(`/proc/${pid}/oom_score_adj`) !== String(s.oomScoreAdj)) {
    try {
      fs.writeFileSync(`/proc/${pid}/oom_score_adj`, String(s.oomScoreAdj));
    } catch (e) {
      // Below the value stasis runs with, only CAP_SYS_RESOURCE may go.
      throw new StasisError('E_RESTORE_FAILED', `Cannot restore oom_score_adj ${s.oomScoreAdj} of pid ${pid}: ${(e as Error).message}`, { cause: e });
    }
  }
}
