// What the incremental tests look at from outside the workload: its data pages (hashed from
// /proc/PID/mem while it idles between commands), its fds, the tracker processes.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { waitFor, assertPassed, type Workload } from '../harness.js';
import { restore } from '../../../src/api/index.js';
import { readImage, pagemapCount } from '../../../src/image/index.js';
import { PE } from '../../../src/image/pagemap-flags.js';

/** sha1 of every page of the areas the workload lists in `regions`, by address. */
export function hashRegions(w: Workload): Map<string, string> {
  const out = new Map<string, string>();
  const fd = fs.openSync(`/proc/${w.pid}/mem`, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (const line of fs.readFileSync(w.file('regions'), 'utf8').trim().split('\n')) {
      const [a, l] = line.split(' ');
      const start = parseInt(a!, 16), len = parseInt(l!, 16);
      for (let at = 0; at < len; at += buf.length) {
        const n = Math.min(buf.length, len - at);
        assert.equal(fs.readSync(fd, buf, 0, n, start + at), n, `cannot read 0x${(start + at).toString(16)} of pid ${w.pid}`);
        for (let p = 0; p < n; p += 4096) {
          out.set((start + at + p).toString(16), crypto.createHash('sha1').update(buf.subarray(p, p + 4096)).digest('hex'));
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

export function assertSameMemory(before: Map<string, string>, after: Map<string, string>): void {
  assert.equal(after.size, before.size, 'the data areas changed size');
  const bad = [...before].filter(([a, h]) => after.get(a) !== h).map(([a]) => `0x${a}`);
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} of ${before.size} pages differ after restore`);
}

/** The fd table as the task sees it: numbers and what they name. */
export function fdTable(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).sort((a, b) => Number(a) - Number(b))
    .map((fd) => `${fd} -> ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
}

/** An fd table without pipe and socket inode numbers: restored ones are new kernel objects. */
export function withoutInodes(table: string[]): string[] {
  return table.map((l) => l.replace(/ -> (pipe|socket):\[\d+\]$/, ' -> $1:[]'));
}

/** Runs step k of the workload and waits for it. */
export function step(w: Workload, k: number): void {
  fs.writeFileSync(w.file(`cmd-${k}`), '');
  waitFor(`step ${k}`, () => fs.existsSync(w.file(`ack-${k}`)));
}

/** Live tracker processes of task `pid`. */
export function trackersOf(pid: number): number[] {
  const found: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (argv[0] === 'stasis-dirty-tracker' && argv.includes(`--pid=${pid}`) && !/\) Z /.test(st)) found.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return found;
}

/** Pagemap entries of pid in dir, counted by kind. */
export function pagemapKinds(dir: string, pid: number): { present: number; parent: number } {
  let present = 0, parent = 0;
  for (const e of readImage(dir, 'pagemap', pid).entries) {
    if (e.flags & PE.PARENT) parent += pagemapCount(e);
    if (e.flags & PE.PRESENT) present += pagemapCount(e);
  }
  return { present, parent };
}

/** VMAs of pid still registered with a userfaultfd for write-protection (smaps "uw"). */
export function uffdWpAreas(pid: number): number {
  return fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n').filter((l) => l.startsWith('VmFlags') && / uw( |$)/.test(l)).length;
}

export function images(root: string, name: string): string {
  return path.join(root, name);
}

/**
 * Restores `dir` at the workload's pid, requires every data page to hash as in `before` (and
 * the fd table to be `fds`, when given), then lets the workload exit and check itself.
 */
export async function restoreSameMemory(w: Workload, dir: string, before: Map<string, string>, fds?: string[]): Promise<void> {
  const r = await restore({ imagesDir: dir, detach: true });
  assert.equal(r.pid, w.pid);
  assertSameMemory(before, hashRegions(w));
  if (fds) assert.deepEqual(fdTable(w.pid), fds, 'the restored task has other fds');
  fs.writeFileSync(w.file('exit'), '');
  assertPassed(w.finish());
}
