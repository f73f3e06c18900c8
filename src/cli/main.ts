// The stasis command: CRIU's verbs and options, over the library API.
// Each verb's code (and with it koffi, the image codecs, the dump and restore code) is loaded
// only when that verb runs: --help, -V and a usage error load the argument parser alone.
import { StasisError, escapeControl } from '../errors.js';
import { NO_LOG, type Log } from '../log.js';
import { DEFAULT_SERVICE_ADDRESS } from '../rpc/address.js';
import { parseArgs, optString, flag, verbHelp, type ParsedArgs } from './args.js';
import { dumpOptions, preDumpOptions, restoreOptions, openLog } from './build-options.js';
import type { Verb } from './options.js';
import { progressReporter, traced, traceLine } from './progress.js';
import { exitNow } from '../sys/exit.js';

const VERSION = '0.1.0';

const USAGE = `Usage: stasis COMMAND [OPTIONS]

Checkpoint and restore Linux process trees, with CRIU's image format and options.

Commands:
  dump -t PID -D DIR     checkpoint the process tree rooted at PID into DIR
  pre-dump -t PID -D DIR write memory while the tree keeps running, and track its changes
  restore -D DIR         restore the tree of DIR; wait for it to exit unless -d
  show -D DIR | FILE...  decode images to JSON
  check                  probe the kernel features stasis uses
  swrk FD                serve CRIU's RPC on the socket FD (as runc calls criu)
  service                serve CRIU's RPC on a socket (--address PATH)
  demo                   checkpoint and restore a bundled counting program

'stasis COMMAND --help' lists the options of a command; -V|--version shows the version.
`;

const SUMMARY: Record<Verb, string> = {
  dump: 'Checkpoints the process tree rooted at -t PID into -D DIR, then kills it (or leaves it\nrunning with -R). With --prev-images-dir, pages unchanged since that (pre-)dump stay there.',
  'pre-dump': 'Writes the memory of the tree while it keeps running (frozen only while it is looked at),\nand tracks its changes for a later dump with --prev-images-dir.',
  restore: 'Restores the tree of -D DIR with its pids, and waits for its root to exit (its exit\nstatus is stasis\'s), or returns at once with -d (and with -S, the root then a child of stasis\'s parent).',
  show: 'Decodes every image of -D DIR, or the image files named, to JSON.',
  check: 'Probes the kernel features stasis uses; exits 1 when one it needs is missing.',
  demo: 'Starts a counting program, checkpoints it, kills it, restores it, and shows it carried on.',
  swrk: 'Serves CRIU\'s RPC requests (CriuReq/CriuResp) on the SOCK_SEQPACKET socket FD, as\n`criu swrk FD` does for runc, until the client closes it.',
  service: `Serves CRIU's RPC requests on a SOCK_SEQPACKET socket at --address (default\n${DEFAULT_SERVICE_ADDRESS}), one connection at a time; -d runs it in the background.`,
};

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

async function run(a: ParsedArgs, log: Log): Promise<number> {
  switch (a.verb) {
    case 'dump': {
      // The verb's own code, not the whole API (dumpSync() is dump() of src/dump/dump.ts).
      const { dump: dumpSync } = await import('../dump/dump.js');
      const r = dumpSync(dumpOptions(a, { log, onProgress: traced(progressReporter()) }));
      if (r.pagesSkippedParent) out(`${r.pagesSkippedParent} unchanged pages left to the parent images (tracked by ${r.trackBackend ?? 'nothing'})`);
      out(`Dumped ${r.pids.length} task(s) (${r.pids.join(', ')}): ${r.pagesWritten} pages written of ${r.pagesScanned} scanned, ` +
        `${r.kcmpCalls} kcmp calls, frozen for ${r.frozenMs.toFixed(1)} ms, ${r.totalMs.toFixed(1)} ms in all`);
      return 0;
    }
    case 'pre-dump': {
      const { preDump: preDumpSync } = await import('../dump/pre-dump.js');
      const r = preDumpSync(preDumpOptions(a, { log, onProgress: traced(progressReporter()) }));
      out(`Pre-dumped ${r.pids.length} task(s) (${r.pids.join(', ')}): ${r.pagesWritten} pages written, ${r.pagesSkippedParent} left to the parent, ` +
        `frozen for ${r.downtimeMs.toFixed(1)} ms; memory tracked by ${r.trackBackend}`);
      return 0;
    }
    case 'restore': {
      const { restore: restoreSync } = await import('../restore/restore.js');
      const r = restoreSync(restoreOptions(a, { log, onProgress: traced(progressReporter()) }));
      if (!r.exit) {
        out(`Restored pid ${r.pid} in ${r.totalMs.toFixed(1)} ms`);
        return 0;
      }
      return r.exit.kind === 'exited' ? r.exit.code : 128 + r.exit.signal;
    }
    case 'show': {
      const dir = optString(a, 'images-dir');
      const files = [...(a.opts.get('input') as string[] | undefined ?? []), ...a.rest];
      if (dir === undefined && files.length === 0) throw new StasisError('E_BAD_ARGS', 'Missing -D/--images-dir DIR or image files to show; see stasis show --help');
      if (dir !== undefined && files.length) throw new StasisError('E_BAD_ARGS', 'Give either -D/--images-dir DIR or image files to show, not both');
      const { inspect } = await import('../api/inspect.js');
      out(JSON.stringify(inspect(dir !== undefined ? { imagesDir: dir } : { files }), jsonBigint, 2));
      return 0;
    }
    case 'check': {
      const { check } = await import('../api/index.js');
      const f = check();
      for (const [k, v] of Object.entries(f)) {
        if (k === 'trackingUnavailable') continue;
        out(`${k.padEnd(15)} ${typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v)}`);
      }
      for (const [b, why] of Object.entries(f.trackingUnavailable)) out(`  no ${b}: ${why}`);
      return f.ready ? 0 : 1;
    }
    case 'demo':
      return (await import('./demo.js')).runDemo(out);
    case 'swrk':
      await (await import('../rpc/swrk.js')).swrk(a.rest[0]);
      return 0;
    case 'service':
      await (await import('../rpc/service.js')).service({ address: optString(a, 'address') ?? DEFAULT_SERVICE_ADDRESS, daemon: flag(a, 'restore-detached'), pidfile: optString(a, 'pidfile') });
      return 0;
    case undefined:
      out(USAGE);
      return 0;
  }
}

function jsonBigint(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : `0x${v.toString(16)}`;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  return v;
}

/** The build's training run (train.ts): a dump and a restore through main(), and more; the steps that ran. */
export async function train(): Promise<string[]> {
  return (await import('./train.js')).train(main);
}

/**
 * Evaluates the modules of every verb, as their first use does: what the command line's
 * start-up snapshot holds (tools/build-snapshot.cjs), so that no verb evaluates them again.
 */
export async function loadVerbs(): Promise<void> {
  await Promise.all([
    import('../dump/dump.js'), import('../dump/pre-dump.js'), import('../restore/restore.js'), import('../api/inspect.js'),
    import('../api/index.js'), import('./demo.js'), import('../rpc/swrk.js'), import('../rpc/service.js'),
    import('../rpc/conn.js'), import('../rpc/server.js'),
  ]);
}

/**
 * For the command line's two entries (bin/stasis.js, and the start-up snapshot's main in
 * tools/build-snapshot.cjs), once main() has returned: the process ends as soon as its event
 * loop is empty, by exitNow(). Not for main()'s other callers (the tests, the build's training
 * run): the process is theirs.
 */
export function endWhenIdle(): void {
  const trace = process.env.STASIS_TRACE ? (how: string) => traceLine(`event loop empty: ${how}`) : undefined;
  process.once('beforeExit', () => exitNow(typeof process.exitCode === 'number' ? process.exitCode : 0, trace));
}

export async function main(argv: string[]): Promise<number> {
  // A reader that goes away (`stasis show | head`) ends the output, not the tool with a trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? 0);
  });
  let log: Log & { close?: () => void } = NO_LOG;
  let a: ParsedArgs;
  try {
    a = parseArgs(argv);
  } catch (e) {
    // Whatever the command line gets wrong, unknown or unsupported, is a usage error.
    process.stderr.write(`stasis: ${(e as Error).message}${e instanceof StasisError ? ` [${e.code}]` : ''}\n`);
    return 2;
  }
  try {
    if (a.opts.get('version') === true) {
      out(`Version: ${VERSION}\nstasis: checkpoint/restore with CRIU's images`);
      return 0;
    }
    if (a.opts.get('help') === true) {
      out(a.verb ? verbHelp(a.verb, SUMMARY[a.verb]) : USAGE);
      return 0;
    }
    log = openLog(a);
    log.info(`stasis ${VERSION}: ${argv.join(' ')}`);
    return await run(a, log);
  } catch (e) {
    if (e instanceof StasisError) {
      log.error(`${e.message} [${e.code}]`);
      process.stderr.write(`stasis: ${e.message} [${e.code}]\n`);
      return e.code === 'E_BAD_ARGS' ? 2 : 1;
    }
    const err = e as Error;
    log.error(err.stack ?? err.message);
    process.stderr.write(`stasis: ${escapeControl(err.message)}\n${process.env.STASIS_DEBUG ? err.stack ?? '' : ''}`);
    return 1;
  } finally {
    log.close?.();
  }
}
