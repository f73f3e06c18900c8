// Progress on a terminal, for work that takes over about a second; silent otherwise.
import type { Progress } from '../api/index.js';

export function progressReporter(stream: NodeJS.WriteStream = process.stderr): ((p: Progress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  const start = Date.now();
  let shown = false;
  let last = 0;
  return (p: Progress) => {
    const now = Date.now();
    if (now - start < 1000 || now - last < 100) return;
    last = now;
    shown = true;
    const pct = p.total > 0 ? ` ${Math.floor((100 * p.done) / p.total)}%` : '';
    stream.write(`\r\x1b[K${p.phase}${pct}`);
    if (p.done >= p.total && shown) stream.write('\r\x1b[K');
  };
}
