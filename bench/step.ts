// One measured step of the benchmark, in its own process so that its peak RSS is its own:
// `node step.js dump PID DIR` or `node step.js restore DIR`. Prints one JSON line (a dump's
// also carries its page counters).
import { dump, restore } from '../src/api/index.js';

const [what, a, b] = process.argv.slice(2);
const t0 = performance.now();
let counters = {};
if (what === 'dump') {
  const d = await dump({ pid: Number(a), imagesDir: b ?? '' });
  counters = {
    pagesWritten: d.pagesWritten, shmemObjects: d.shmemObjects, shmemPagesScanned: d.shmemPagesScanned,
    shmemPagesWritten: d.shmemPagesWritten, imageBytes: d.imageBytes, frozenMs: d.frozenMs, pids: d.pids.length,
  };
} else await restore({ imagesDir: a ?? '', detach: true });
process.stdout.write(`${JSON.stringify({ ms: performance.now() - t0, maxRssKiB: process.resourceUsage().maxRSS, ...counters })}\n`);
