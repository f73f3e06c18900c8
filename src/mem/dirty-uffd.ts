// The userfaultfd backend: every private VMA is registered for write-protection on a
// userfaultfd in async mode (UFFD_FEATURE_WP_ASYNC), and write-protected. A write, by the
// task or by the kernel on its behalf (read(2) into a buffer), then resolves itself without
// stopping anyone and leaves the page "written"; PAGEMAP_SCAN lists the written pages and,
// with PM_SCAN_WP_MATCHING, protects them again in the same walk.
//
// Only userfaultfd() has to run in the task (the uffd is bound to the caller's mm): it is
// injected, its fd taken into stasis with pidfd_getfd and closed in the task at once, all
// while the task is frozen, so the task never has an extra fd. The rest (UFFDIO_API,
// UFFDIO_REGISTER, UFFDIO_WRITEPROTECT, PAGEMAP_SCAN) works from stasis on its copy.
//
// Between runs: a registration lives exactly as long as the uffd file is open, and the
// pre-dump's stasis process exits. Keeping the fd in the task at a high number would let
// the task see it; re-arming at the dump would lose every write in between. So a tracker
// process holds it: `tail -f --pid=PID /dev/null` (coreutils, ~2 MiB), started with
// posix_spawn with the uffd as its fd 3, in its own session. It holds the file and nothing
// else, exits by itself within a second of the tracked task's death (--pid), and the next
// run takes the fd from it with pidfd_getfd. The final dump kills it, which releases the uffd;
// the kernel then unregisters every VMA and drops the write-protection (userfaultfd_release).
//
// Trust: a VMA's pages are judged by the scan only if the VMA is still registered for async
// write-protection (the scan fails otherwise) and lies inside the ranges registered last time. New mappings, brk growth,
// mremap'd areas (a move drops the registration without UFFD_FEATURE_EVENT_REMAP, which we
// do not ask for: it would block the task until someone read the event) and areas mapped
// over old ones are not registered, so they count as written in full. One kernel quirk
// makes this coarse: an area moved by mremap next to another registered area with the same
// flags is merged into it, and the kernel then drops the registration of the merged whole
// (mremap_userfaultfd_prep resets the new VMA's context); that area is dumped in full.
// Pages are never trusted wrongly, some are just written again.
import fs from 'node:fs';
import {
  Injector, pidfdOpen, pidfdGetfd, closeFd, kill, waitPid, spawnTask, resolveExecutable, SyscallError, type InjectorOptions,
  uffdApi, uffdRegisterWp, uffdWriteProtect, pagemapScan, PAGE_IS, PM_SCAN_WP_MATCHING, PM_SCAN_CHECK_WPASYNC,
  UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED, UFFD_USER_MODE_ONLY,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { PageRanges } from './page-ranges.js';
import { hasDumpablePages } from './vma.js';
import { taskStart, type DirtyInfo, type DirtyTracker, type TaskTrack, type TrackedTask } from './dirty.js';
import { sleepSync } from '../sys/sleep.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const TRACKER_NAME = 'stasis-dirty-tracker';
const PAGE = 4096n;

/** Whether this machine can run the tracker process. */
export function trackerAvailable(): boolean {
  try {
    resolveExecutable('tail');
    return true;
  } catch {
    return false;
  }
}

export class UffdTracker implements DirtyTracker {
  readonly backend = 'uffd' as const;
  private uffd = -1;
  private tracker: { pid: number; start: string } | null = null;
  private registered = new PageRanges();
  /** Starts of the VMAs whose scan could be trusted. */
  private trusted = new Set<bigint>();
  private rearmed = false;

  private constructor(private readonly pid: number, private readonly start: string, private readonly inject: InjectorOptions) {}

  /** Picks up the tracking a record describes; a record that no longer holds gives a fresh tracker. */
  static open(pid: number, start: string, rec: TaskTrack | null, inject: InjectorOptions = {}): UffdTracker {
    const t = new UffdTracker(pid, start, inject);
    const tr = rec?.tracker;
    if (!tr || !rec.ranges || taskStart(tr.pid) !== tr.start) return t;
    let pidfd = -1;
    try {
      pidfd = pidfdOpen(tr.pid);
      const fd = pidfdGetfd(pidfd, tr.fd);
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:[userfaultfd]') {
        closeFd(fd);
        return t;
      }
      t.uffd = fd;
      t.tracker = { pid: tr.pid, start: tr.start };
      t.registered = PageRanges.from(rec.ranges);
    } catch {
      /* the tracker went away meanwhile: track afresh */
    } finally {
      if (pidfd >= 0) closeFd(pidfd);
    }
    return t;
  }

  changes(task: TrackedTask, rearm: boolean): DirtyInfo {
    if (this.uffd < 0) return { written: null };
    const written = new PageRanges();
    const inRecord = this.registered.cursor();
    const pagemap = fs.openSync(`/proc/${task.pid}/pagemap`, 'r');
    try {
      for (const v of task.vmas) {
        if (!hasDumpablePages(v)) continue;
        const first = Number(v.start / PAGE), last = Number(v.end / PAGE);
        // PM_SCAN_CHECK_WPASYNC fails with EPERM where the VMA is not registered for async
        // write-protection any more (smaps would say "uw"; the scan says it for free).
        let found: [bigint, bigint][] | null = null;
        if (inRecord.covers(first, last)) {
          found = [];
          try {
            pagemapScan(pagemap, v.start, v.end, {
              flags: PM_SCAN_CHECK_WPASYNC | (rearm ? PM_SCAN_WP_MATCHING : 0),
              categoryMask: PAGE_IS.WRITTEN, returnMask: PAGE_IS.WRITTEN,
            }, (r) => found!.push([r.start, r.end]));
          } catch (e) {
            if (!(e instanceof SyscallError)) throw e;
            found = null;
          }
        }
        if (found) {
          for (const [s, e] of found) written.addBytes(s, e);
          this.trusted.add(v.start);
        } else {
          written.add(first, last);
        }
      }
    } finally {
      fs.closeSync(pagemap);
    }
    this.rearmed = rearm;
    return { written };
  }

  arm(task: TrackedTask): void {
    if (this.uffd < 0) this.create(task.pid);
    const registered = new PageRanges();
    let staleStopped = false;
    const pagemap = fs.openSync(`/proc/${task.pid}/pagemap`, 'r');
    try {
      for (const v of task.vmas) {
        if (!hasDumpablePages(v)) continue;
        const len = v.end - v.start;
        if (this.trusted.has(v.start)) {
          // Protect again what was written since the last arm (the scan in changes() did it
          // when rearming). One PM_SCAN_WP_MATCHING walk: ~1 ms per GiB, where
          // UFFDIO_WRITEPROTECT per written range costs ~5 us a call.
          if (!this.rearmed) {
            pagemapScan(pagemap, v.start, v.end, {
              flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, categoryMask: PAGE_IS.WRITTEN, returnMask: PAGE_IS.WRITTEN,
            }, () => {});
          }
        } else {
          // EBUSY (the task's own userfaultfd), EINVAL (VM_DROPPABLE and the like): untracked,
          // so the area counts as written in full at every dump.
          let r = uffdRegisterWp(this.uffd, v.start, len);
          if (r === -EBUSY && !staleStopped) {
            // Most likely an older chain's tracker of this task (a fresh pre-dump over one
            // never finished): it goes, this chain takes over.
            staleStopped = true;
            if (stopStaleTrackers(task.pid, this.tracker?.pid ?? null)) r = uffdRegisterWp(this.uffd, v.start, len);
          }
          if (r !== 0) continue;
          uffdWriteProtect(this.uffd, v.start, len);
        }
        registered.addBytes(v.start, v.end);
      }
    } finally {
      fs.closeSync(pagemap);
    }
    this.registered = registered;
  }

  /** userfaultfd() injected into the frozen task; its fd moved into stasis and closed there. */
  private create(pid: number): void {
    const inj = new Injector(pid, this.inject);
    let remote = -1;
    try {
      const r = inj.call('userfaultfd', O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
      if (r < 0n) throw new SyscallError('userfaultfd', Number(-r), `injected in pid ${pid}`);
      remote = Number(r);
      const pidfd = pidfdOpen(pid);
      try {
        this.uffd = pidfdGetfd(pidfd, remote);
      } finally {
        closeFd(pidfd);
      }
    } finally {
      if (remote >= 0) inj.call('close', remote);
      inj.end();
    }
    try {
      uffdApi(this.uffd, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED);
    } catch {
      uffdApi(this.uffd, UFFD_FEATURE_WP_ASYNC);
    }
  }

  commit(): TaskTrack {
    if (this.uffd < 0) throw new StasisError('E_DUMP_FAILED', `Write tracking of pid ${this.pid} was not armed`);
    if (!this.tracker) {
      const pid = spawnTask([TRACKER_NAME, '-f', '-s', '1', `--pid=${this.pid}`, '/dev/null'], {
        exe: resolveExecutable('tail'), passFds: [this.uffd], setsid: true,
        stdin: { path: '/dev/null' }, stdout: { path: '/dev/null', flags: 1 }, stderr: { path: '/dev/null', flags: 1 },
      });
      this.tracker = { pid, start: taskStart(pid) ?? '' };
    }
    return {
      pid: this.pid, start: this.start, backend: 'uffd',
      tracker: { ...this.tracker, fd: 3 }, ranges: [...this.registered],
    };
  }

  stop(): void {
    const t = this.tracker;
    this.tracker = null;
    if (t && taskStart(t.pid) === t.start) {
      try {
        kill(t.pid, 9);
        if (isChildOfUs(t.pid)) waitPid(t.pid);
      } catch {
        /* gone already */
      }
    }
    this.release();
  }

  release(): void {
    if (this.uffd >= 0) closeFd(this.uffd);
    this.uffd = -1;
  }
}

const EBUSY = 16;

/** Stops the trackers of `pid` other than `keep`, and waits until they are gone; true if there were any. */
function stopStaleTrackers(pid: number, keep: number | null): boolean {
  const stale: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d) || Number(d) === keep) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv[0] === TRACKER_NAME && argv.includes(`--pid=${pid}`)) stale.push(Number(d));
    } catch {
      /* gone */
    }
  }
  for (const t of stale) {
    try {
      kill(t, 9);
      if (isChildOfUs(t)) waitPid(t);
    } catch {
      /* gone */
    }
  }
  // Its files (the uffd) are closed once it is dead, a zombie or reaped.
  const until = Date.now() + 2000;
  while (stale.some((t) => isAlive(t)) && Date.now() < until) sleepSync(2);
  return stale.length > 0;
}

function isAlive(pid: number): boolean {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(s.slice(s.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

function isChildOfUs(pid: number): boolean {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
  } catch {
    return false;
  }
}

