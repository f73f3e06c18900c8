// One measured step of the benchmark, in its own process so that its peak RSS is its own:
// `node step.js dump PID DIR [OPTIONS_JSON]`, `node step.js pre-dump PID DIR [OPTIONS_JSON]`
// or `node step.js restore DIR`. Prints one JSON line (with the dump's result, if any).
// In-thread, as the command line runs: an engine thread would add its start-up and its heap.
import { dumpSync, restoreSync, preDumpSync } from '../src/api/index.js';

const [what, a, b, extra] = process.argv.slice(2);
const more = extra ? JSON.parse(extra) as Record<string, unknown> : {};
const t0 = performance.now();
let result: Record<string, unknown> | null = null;
if (what === 'dump') result = { ...dumpSync({ pid: Number(a), imagesDir: b ?? '', ...more }) };
else if (what === 'pre-dump') result = { ...preDumpSync({ pid: Number(a), imagesDir: b ?? '', ...more }) };
else restoreSync({ imagesDir: a ?? '', detach: true });
// The result both whole and spread out, for benches that read either.
process.stdout.write(`${JSON.stringify({ ms: performance.now() - t0, maxRssKiB: process.resourceUsage().maxRSS, ...result, result })}\n`);
