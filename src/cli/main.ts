// The stasis command: CRIU's verbs and options, over the library API.
import { dump, restore, inspect, check, preDump, type TrackBackend } from '../api/index.js';
import { StasisError } from '../errors.js';
import { parseArgs, requirePid, requireString, type ParsedArgs } from './args.js';
import { progressReporter } from './progress.js';
import { runDemo } from './demo.js';

const USAGE = `Usage: stasis COMMAND [OPTIONS]

Commands:
  dump -t PID -D DIR [--leave-running] [--shell-job] [--prev-images-dir PREV] [--track-mem] [--ghost-limit SIZE]
                       checkpoint the process tree rooted at PID into DIR; with PREV (relative
                       to DIR), pages unchanged since PREV stay there (in_parent); deleted
                       files still open are kept up to SIZE bytes each (default 1M)
  pre-dump -t PID -D DIR [--prev-images-dir PREV]
                       write memory while the tree keeps running and track its changes
    --track-backend uffd|soft-dirty|hash   how changes are tracked (default: the best available)
  restore -D DIR [-d] [--shell-job]
                       restore the tree; wait for it to exit unless -d (detach)
  show -D DIR | show FILE...
                       decode images to JSON
  check                probe the kernel features stasis uses
  demo                 checkpoint and restore a bundled counting program
`;

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

async function run(a: ParsedArgs): Promise<number> {
  switch (a.command) {
    case 'dump': {
      const r = await dump({
        pid: requirePid(a),
        imagesDir: requireString(a, '--images-dir'),
        leaveRunning: a.flags.has('--leave-running'),
        shellJob: a.flags.has('--shell-job'),
        ...ghostLimit(a),
        prevImagesDir: optString(a, '--prev-images-dir'),
        trackMem: a.flags.has('--track-mem'),
        trackBackend: trackBackend(a),
        onProgress: progressReporter(),
      });
      if (r.pagesSkippedParent) out(`${r.pagesSkippedParent} unchanged pages left to the parent images (tracked by ${r.trackBackend ?? 'nothing'})`);
      out(`Dumped ${r.pids.length} task(s) (${r.pids.join(', ')}): ${r.pagesWritten} pages written of ${r.pagesScanned} scanned, ` +
        `${r.kcmpCalls} kcmp calls, frozen for ${r.frozenMs.toFixed(1)} ms, ${r.totalMs.toFixed(1)} ms in all`);
      return 0;
    }
    case 'pre-dump': {
      const r = await preDump({
        pid: requirePid(a), imagesDir: requireString(a, '--images-dir'), prevImagesDir: optString(a, '--prev-images-dir'),
        trackBackend: trackBackend(a), onProgress: progressReporter(),
      });
      out(`Pre-dumped ${r.pids.length} task(s) (${r.pids.join(', ')}): ${r.pagesWritten} pages written, ${r.pagesSkippedParent} left to the parent, ` +
        `frozen for ${r.downtimeMs.toFixed(1)} ms; memory tracked by ${r.trackBackend}`);
      return 0;
    }
    case 'restore': {
      const r = await restore({
        imagesDir: requireString(a, '--images-dir'),
        detach: a.flags.has('--restore-detached'),
        shellJob: a.flags.has('--shell-job'),
        onProgress: progressReporter(),
      });
      if (!r.exit) {
        out(`Restored pid ${r.pid} in ${r.totalMs.toFixed(1)} ms`);
        return 0;
      }
      return r.exit.kind === 'exited' ? r.exit.code : 128 + r.exit.signal;
    }
    case 'show': {
      const dir = a.flags.get('--images-dir');
      out(JSON.stringify(inspect(typeof dir === 'string' ? { imagesDir: dir } : { files: a.rest }), jsonBigint, 2));
      return 0;
    }
    case 'check': {
      const f = check();
      for (const [k, v] of Object.entries(f)) {
        if (k === 'trackingUnavailable') continue;
        out(`${k.padEnd(15)} ${typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v)}`);
      }
      for (const [b, why] of Object.entries(f.trackingUnavailable)) out(`  no ${b}: ${why}`);
      return f.ready ? 0 : 1;
    }
    case 'demo':
      return runDemo(out);
    case 'help':
    case '--help':
      out(USAGE);
      return 0;
    default:
      throw new StasisError('E_BAD_ARGS', `Unknown command ${JSON.stringify(a.command)}; see stasis --help`);
  }
}

/** --ghost-limit SIZE: bytes, or with a K, M or G suffix (CRIU's form). */
function ghostLimit(a: ParsedArgs): { ghostLimit?: number } {
  const v = a.flags.get('--ghost-limit');
  if (v === undefined) return {};
  const m = typeof v === 'string' ? /^(\d+)([KMG]?)$/i.exec(v) : null;
  if (!m) throw new StasisError('E_BAD_ARGS', `Invalid --ghost-limit ${JSON.stringify(v)}: expected a size such as 1048576, 512K or 16M`);
  const mult = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[(m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'];
  return { ghostLimit: Number(m[1]) * mult };
}

function optString(a: ParsedArgs, name: string): string | undefined {
  const v = a.flags.get(name);
  if (v === true) throw new StasisError('E_BAD_ARGS', `Option ${name} needs a value`);
  return v;
}

function trackBackend(a: ParsedArgs): TrackBackend | undefined {
  const v = optString(a, '--track-backend');
  if (v === undefined) return undefined;
  if (v !== 'auto' && v !== 'uffd' && v !== 'soft-dirty' && v !== 'hash') {
    throw new StasisError('E_BAD_ARGS', `Unknown --track-backend ${JSON.stringify(v)}: expected auto, uffd, soft-dirty or hash`);
  }
  return v;
}

function jsonBigint(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : `0x${v.toString(16)}`;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  return v;
}

export async function main(argv: string[]): Promise<number> {
  // A reader that goes away (`stasis show | head`) ends the output, not the tool with a trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? 0);
  });
  try {
    return await run(parseArgs(argv));
  } catch (e) {
    if (e instanceof StasisError) {
      process.stderr.write(`stasis: ${e.message} [${e.code}]\n`);
      return e.code === 'E_BAD_ARGS' ? 2 : 1;
    }
    const err = e as Error;
    process.stderr.write(`stasis: ${err.message}\n${process.env.STASIS_DEBUG ? err.stack ?? '' : ''}`);
    return 1;
  }
}
