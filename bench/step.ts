// One measured step of the benchmark, in its own process so that its peak RSS is its own:
// `node step.js dump PID DIR` or `node step.js restore DIR`. Prints one JSON line.
import { dump, restore } from '../src/api/index.js';

const [what, a, b] = process.argv.slice(2);
const t0 = performance.now();
if (what === 'dump') await dump({ pid: Number(a), imagesDir: b ?? '' });
else await restore({ imagesDir: a ?? '', detach: true });
process.stdout.write(`${JSON.stringify({ ms: performance.now() - t0, maxRssKiB: process.resourceUsage().maxRSS })}\n`);
