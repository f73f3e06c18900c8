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

/** One STASIS_TRACE line: `what`, in ms since the process started, as bin/stasis.js prints its own. */
export function traceLine(what: string, stream: NodeJS.WriteStream = process.stderr): void {
  stream.write(`stasis trace: ${performance.now().toFixed(1).padStart(7)} ms  ${what}\n`);
}

/**
 * With STASIS_TRACE set: each phase of the run on stderr as it starts, in ms since the process
 * started (bin/stasis.js prints the start-up before it), then `report`'s own handling.
 */
export function traced(report: ((p: Progress) => void) | undefined, stream: NodeJS.WriteStream = process.stderr): ((p: Progress) => void) | undefined {
  if (!process.env.STASIS_TRACE) return report;
  let phase = '';
  const line = (what: string) => traceLine(what, stream);
  line('run started');
  return (p: Progress) => {
    if (p.phase !== phase) line((phase = p.phase));
    report?.(p);
  };
}
