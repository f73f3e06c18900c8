// Test helper: decode an image with CRIU's crit, the reference reader of the format.
// Tests of every layer use it to check that the images they write are CRIU's format.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StasisError } from '../errors.js';

/** The JSON crit prints: the image's magic name and its entries. */
export interface CritImage {
  magic: string;
  entries: Record<string, unknown>[];
}

/** True when `crit` runs on this machine (Debian's criu package installs it). */
export function critAvailable(): boolean {
  const r = spawnSync('crit', ['--help'], { stdio: 'ignore', timeout: 30_000 });
  return r.status === 0;
}

/**
 * Runs `crit decode -i FILE` and parses its JSON. `pretty` (the default) is crit's
 * human-readable form: hex strings, flag names; without it numbers stay numbers.
 * Throws with crit's stderr when crit cannot decode the file.
 */
export function critDecode(file: string, opts: { pretty?: boolean; exactIntegers?: boolean } = {}): CritImage {
  const args = ['decode', '-i', file];
  if (opts.pretty !== false) args.push('--pretty');
  let out: string;
  try {
    out = execFileSync('crit', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const stderr = (e.stderr ?? '').trim();
    throw new StasisError('E_CORRUPT', `crit cannot decode ${file}: ${stderr === '' ? e.message : stderr}`, { cause: err });
  }
  return JSON.parse(opts.exactIntegers === true ? quoteBigIntegers(out) : out) as CritImage;
}

// One Python process for a whole image set: `crit decode` per file costs a Python start-up
// (about 0.3 s) each, which made most of the suite's time. Same library, same checks.
const BATCH = `
import json, sys
import pycriu
bad = {}
for f in sys.argv[1:]:
    try:
        with open(f, 'rb') as fh:
            json.dumps(pycriu.images.load(fh, True))
    except Exception as e:
        bad[f] = '%s: %s' % (type(e).__name__, e)
print(json.dumps(bad))
`;

/**
 * Checks that crit's library decodes every file (in pretty mode, as \`crit decode --pretty\`),
 * in one process; throws naming each file it cannot decode. Falls back to one \`crit\` per
 * file where crit's Python package cannot be imported directly.
 */
export function critDecodeAll(files: string[]): void {
  if (files.length === 0) return;
  const r = spawnSync('/usr/bin/python3', ['-c', BATCH, ...files], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    for (const f of files) critDecode(f);
    return;
  }
  const bad = JSON.parse(r.stdout) as Record<string, string>;
  const names = Object.keys(bad);
  if (names.length) throw new StasisError('E_CORRUPT', `crit cannot decode ${names.map((f) => `${f} (${bad[f]})`).join(', ')}`);
}

/**
 * Decodes a file with crit and encodes crit's JSON back with crit (CRIU's crit-recode check).
 * crit serialises with Python's protobuf, so equal bytes mean stasis encodes as CRIU's tools do.
 */
export function critRecode(file: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-recode-'));
  try {
    const json = join(dir, 'image.json');
    const out = join(dir, 'image.img');
    for (const args of [['decode', '-i', file, '-o', json], ['encode', '-i', json, '-o', out]]) {
      const r = spawnSync('crit', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new StasisError('E_CORRUPT', `crit ${args[0]} failed on ${file}: ${(r.stderr ?? '').trim()}`);
    }
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Puts integers beyond Number.MAX_SAFE_INTEGER in quotes, so that JSON.parse keeps them
 * exact as decimal strings (crit prints uint64 values as bare numbers).
 */
export function quoteBigIntegers(json: string): string {
  let out = '';
  let i = 0;
  while (i < json.length) {
    const ch = json[i] as string;
    if (ch === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      out += json.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      let j = i + 1;
      while (j < json.length && /[0-9.eE+-]/.test(json[j] as string)) j++;
      const token = json.slice(i, j);
      const big = /^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token));
      out += big ? `"${token}"` : token;
      i = j;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}
