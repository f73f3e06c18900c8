// `stasis demo`: start a counting program, checkpoint it mid-run, kill it, restore it, and
// show that it carries on from the very next number.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dump, restore, startTask, waitTask, killTask } from '../api/index.js';
import { sleepSync } from '../sys/sleep.js';

const example = () => path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/counter.c');

function counts(file: string): number[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('count '))
    .map((l) => Number(l.split(' ')[1]));
}

export async function runDemo(out: (s: string) => void): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-demo-'));
  const bin = path.join(dir, 'counter');
  execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, example()], { stdio: 'inherit' });
  const log = path.join(dir, 'counter.log');
  const images = path.join(dir, 'images');
  const pid = startTask([bin], { stdout: log });
  out(`Started the counter as pid ${pid}; it prints a line every 50 ms to ${log}`);
  sleepSync(1000);

  const d = await dump({ pid, imagesDir: images });
  const before = counts(log);
  out(`Checkpointed and killed it at count ${before.at(-1)} (${d.pagesWritten} pages, frozen ${d.frozenMs.toFixed(1)} ms) into ${images}`);
  sleepSync(500);
  out(`Half a second later the log still ends at ${counts(log).at(-1)}: nothing is running.`);

  const r = await restore({ imagesDir: images, detach: true });
  out(`Restored pid ${r.pid} in ${r.totalMs.toFixed(1)} ms`);
  sleepSync(1000);
  killTask(r.pid);
  waitTask(r.pid);
  const after = counts(log);
  const gaps = after.filter((c, i) => i > 0 && c !== (after[i - 1] ?? 0) + 1).length;
  out(`After a second more it had reached ${after.at(-1)}; the counts before and after are ${gaps === 0 ? 'continuous: no gap, no repeat' : `broken in ${gaps} places`}.`);
  out(after.slice(before.length - 3, before.length + 3).map((c) => `  count ${c}`).join('\n'));
  return gaps === 0 && after.length > before.length ? 0 : 1;
}
