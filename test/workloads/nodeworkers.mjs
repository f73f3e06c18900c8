// A real multithreaded runtime: node with two worker_threads, each summing its own range in
// slices and reporting through postMessage; the main thread keeps a timer. Everyone idles
// after a few slices until `go` (a checkpoint may come then), then finishes; the total is
// checked against a direct computation.
import fs from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const f = (k) => (k * k) % 1000003;
if (isMainThread) {
  process.chdir(process.argv[2]);
  const write = (name, text) => {
    fs.writeFileSync(`${name}.tmp`, text);
    fs.renameSync(`${name}.tmp`, name);
  };
  const ranges = [[0, 300000], [300000, 600000]];
  let expected = 0;
  for (let k = 0; k < 600000; k++) expected += f(k);
  let paused = 0, done = 0, total = 0, ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  for (const r of ranges) {
    const w = new Worker(new URL(import.meta.url), { workerData: r });
    w.on('message', (m) => {
      if (m === 'paused' && ++paused === ranges.length) write('ready', 'ready\n');
      if (typeof m === 'number') {
        total += m;
        if (++done === ranges.length) {
          clearInterval(timer);
          process.stdout.write(`${total}\n`);
          write('result', total === expected && ticks > 0 ? 'PASS\n' : `FAIL: total ${total}, want ${expected}; ${ticks} ticks\n`);
        }
      }
    });
  }
} else {
  const [lo, hi] = workerData;
  let total = 0, slices = 0;
  const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  for (let n = lo; n < hi; n += 10000) {
    for (let k = n; k < Math.min(n + 10000, hi); k++) total += f(k);
    if (++slices === 5) {
      parentPort.postMessage('paused');
      while (!fs.existsSync('go')) sleep(1);
    }
  }
  parentPort.postMessage(total);
}
