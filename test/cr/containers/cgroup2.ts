// The machine's cgroup2 hierarchy for the tests that make cgroups of their own in it.
import fs from 'node:fs';
import path from 'node:path';

/** Where the cgroup2 hierarchy is mounted (with its root), or why a test cannot make cgroups in it. */
export function cgroup2Mount(): { mount: string } | string {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep > 0 && f[sep + 1] === 'cgroup2' && f[3] === '/') {
      try {
        fs.accessSync(f[4]!, fs.constants.W_OK);
        return { mount: f[4]! };
      } catch {
        return `the cgroup2 hierarchy at ${f[4]} is not writable`;
      }
    }
  }
  return 'no cgroup2 hierarchy mounted (with its root) on this machine';
}

/** Removes the cgroup `dir` and every cgroup below it, deepest first (they must be empty of tasks). */
export function removeCgroups(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const walk = (d: string): string[] => [...fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => walk(path.join(d, e.name))), d];
  for (const d of walk(dir)) {
    // A task that has just exited may keep its cgroup busy for a moment.
    for (let i = 0; ; i++) {
      try {
        fs.rmdirSync(d);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 200) throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  }
}
