// The soft-dirty backend: `echo 4 > /proc/PID/clear_refs` clears every page's soft-dirty bit
// (pagemap bit 55) and the kernel sets it again on the next write, kernel writes included;
// new and moved mappings come soft-dirty as a whole (VM_SOFTDIRTY). The state lives in the
// task's page tables, so nothing needs to stay alive between runs. Used only where a probe
// wrote a page and saw the bit (kerndat.softDirty): without CONFIG_MEM_SOFT_DIRTY, clear_refs
// accepts the 4 and nothing is ever tracked.
import fs from 'node:fs';
import { PageRanges } from './page-ranges.js';
import { hasDumpablePages } from './vma.js';
import { PM_SOFT_DIRTY } from '../proc/pagemap.js';
import type { DirtyInfo, DirtyTracker, TaskTrack, TrackedTask } from './dirty.js';

const CHUNK = 65536;
const SOFT_DIRTY_HI = Number(PM_SOFT_DIRTY >> 32n);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class SoftDirtyTracker implements DirtyTracker {
  readonly backend = 'soft-dirty' as const;

  /** `tracked`: the parent recorded soft-dirty tracking of this very task. */
  constructor(private readonly pid: number, private readonly start: string, private readonly tracked: boolean) {}

  changes(task: TrackedTask, rearm: boolean): DirtyInfo {
    if (!this.tracked) return { written: null };
    const written = new PageRanges();
    const fd = fs.openSync(`/proc/${task.pid}/pagemap`, 'r');
    const buf = Buffer.allocUnsafe(CHUNK * 8);
    const words = new Uint32Array(buf.buffer, buf.byteOffset, CHUNK * 2);
    try {
      for (const v of task.vmas) {
        if (!hasDumpablePages(v)) continue;
        const first = Number(v.start / 4096n), last = Number(v.end / 4096n);
        for (let p = first; p < last; p += CHUNK) {
          const n = Math.min(CHUNK, last - p);
          fs.readSync(fd, buf, 0, n * 8, p * 8);
          for (let i = 0; i < n; i++) {
            if (words[2 * i + (LITTLE ? 1 : 0)]! & SOFT_DIRTY_HI) written.add(p + i, p + i + 1);
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    if (rearm) this.arm(task);
    return { written };
  }

  arm(task: TrackedTask): void {
    fs.writeFileSync(`/proc/${task.pid}/clear_refs`, '4');
  }

  commit(): TaskTrack {
    return { pid: this.pid, start: this.start, backend: 'soft-dirty' };
  }

  stop(): void {}

  release(): void {}
}
