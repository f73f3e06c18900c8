// The library surface. The CLI is a thin wrapper over these functions.
import fs from 'node:fs';
import path from 'node:path';
import { probeKernel, type KernelFeatures } from '../sys/index.js';
import { readImageFile, type AnyImage } from '../image/index.js';
import { dump as dumpTree } from '../dump/dump.js';
import { restore as restoreTree } from '../restore/restore.js';
import { preDump as preDumpTree } from '../dump/pre-dump.js';
import { trackingReport } from '../dump/incremental.js';
import { StasisError } from '../errors.js';
import type { DumpOptions, DumpResult, PreDumpOptions, PreDumpResult, RestoreOptions, RestoreResult } from './types.js';

export * from './types.js';
export { startTask, waitTask, killTask, type StartOptions } from './tasks.js';
export { StasisError, type StasisErrorCode } from '../errors.js';

/** Checkpoints the process tree rooted at `opts.pid` into `opts.imagesDir`. */
export async function dump(opts: DumpOptions): Promise<DumpResult> {
  return dumpTree(opts);
}

/** Restores the tree in `opts.imagesDir`; waits for its root to exit unless `detach`. */
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  return restoreTree(opts);
}

/**
 * Incremental pre-dump: memory only, the tree frozen only while it is looked at, then left
 * running with its memory tracked; a later dump (or pre-dump) with `prevImagesDir` pointing
 * here writes only what changed.
 */
export async function preDump(opts: PreDumpOptions): Promise<PreDumpResult> {
  return preDumpTree(opts);
}

/** Decodes image files: every file of a directory, or the files named. */
export function inspect(what: { imagesDir: string } | { files: string[] }): Record<string, AnyImage | { raw: number }> {
  const files = 'imagesDir' in what
    ? fs.readdirSync(what.imagesDir).filter((f) => f.endsWith('.img')).sort().map((f) => path.join(what.imagesDir, f))
    : what.files;
  const out: Record<string, AnyImage | { raw: number }> = {};
  for (const f of files) {
    out[path.basename(f)] = /^pages-\d+\.img$/.test(path.basename(f)) ? { raw: fs.statSync(f).size } : readImageFile(f);
  }
  return out;
}

export interface CheckResult extends KernelFeatures {
  /** Everything a dump and restore need is there. */
  ready: boolean;
  /** The dirty-tracking backend pre-dumps use here (uffd, soft-dirty or hash). */
  dirtyTracking: string;
  /** Backends that cannot run here, and why. */
  trackingUnavailable: Record<string, string>;
}

/** Probes the kernel features stasis uses. */
export function check(): CheckResult {
  const k = probeKernel();
  const t = trackingReport(k);
  return { ...k, ready: k.kcmp && k.pidfdGetfd && k.clone3SetTid, dirtyTracking: t.backend, trackingUnavailable: t.unavailable };
}
