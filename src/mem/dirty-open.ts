// Choosing a dirty-tracking backend by probing, and opening one for a task from what the
// parent image dir recorded.
import path from 'node:path';
import type { KernelFeatures, InjectorOptions } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { UffdTracker, trackerAvailable } from './dirty-uffd.js';
import { SoftDirtyTracker } from './dirty-soft.js';
import { HashTracker } from './dirty-hash.js';
import type { DirtyBackendChoice, DirtyBackendName, DirtyTracker, TaskTrack } from './dirty.js';

/** Why each backend can or cannot run here; `null` means it can. */
export function backendProblems(k: KernelFeatures): Record<DirtyBackendName, string | null> {
  return {
    uffd: !k.pagemapScan ? 'the kernel lacks the PAGEMAP_SCAN ioctl'
      : !k.uffdWpAsync ? 'the kernel lacks userfaultfd write-protection in async mode (UFFD_FEATURE_WP_ASYNC)'
        : !k.pidfdGetfd ? 'the kernel lacks pidfd_getfd'
          : !trackerAvailable() ? 'there is no tail(1) to hold the userfaultfd between runs' : null,
    'soft-dirty': k.softDirty ? null : 'soft-dirty bits do not track writes here (CONFIG_MEM_SOFT_DIRTY off: clear_refs accepts 4, bit 55 never sets)',
    hash: null,
  };
}

/** The backend to use: the one asked for (if it can run), else the best that can. */
export function chooseBackend(k: KernelFeatures, choice: DirtyBackendChoice, inherited: DirtyBackendName | null): DirtyBackendName {
  const problems = backendProblems(k);
  if (choice !== 'auto') {
    const p = problems[choice];
    if (p) throw new StasisError('E_UNSUPPORTED', `Cannot track memory with the ${choice} backend: ${p}`);
    return choice;
  }
  if (inherited && !problems[inherited]) return inherited;
  if (!problems.uffd) return 'uffd';
  if (!problems['soft-dirty']) return 'soft-dirty';
  return 'hash';
}

/** A tracker for task `pid`, continuing the parent's record `rec` when it is of this backend. */
export function openTracker(backend: DirtyBackendName, pid: number, start: string, rec: TaskTrack | null, parentDir: string | null, inject: InjectorOptions = {}): DirtyTracker {
  const mine = rec && rec.backend === backend && rec.pid === pid && rec.start === start ? rec : null;
  switch (backend) {
    case 'uffd':
      return UffdTracker.open(pid, start, mine, inject);
    case 'soft-dirty':
      return new SoftDirtyTracker(pid, start, mine !== null);
    case 'hash':
      return new HashTracker(pid, start, mine?.hashes && parentDir ? path.join(parentDir, mine.hashes) : null);
  }
}
