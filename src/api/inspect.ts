// inspect(): decoding images, apart from the rest of the API so that `stasis show` loads the
// image codecs only (no syscalls, no dump or restore code).
import fs from 'node:fs';
import path from 'node:path';
import { isRawImage, readImageFile, type AnyImage } from '../image/index.js';
import { StasisError } from '../errors.js';

/** Decodes image files: every file of a directory, or the files named. */
export function inspect(what: { imagesDir: string } | { files: string[] }): Record<string, AnyImage | { raw: number }> {
  if ('imagesDir' in what && !fs.statSync(what.imagesDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new StasisError('E_NO_IMAGE', `Cannot read images from ${what.imagesDir}: no such directory`);
  }
  for (const f of 'files' in what ? what.files : []) {
    if (!fs.statSync(f, { throwIfNoEntry: false })?.isFile()) throw new StasisError('E_NO_IMAGE', `Cannot read image ${f}: no such file`);
  }
  const files = 'imagesDir' in what
    ? fs.readdirSync(what.imagesDir).filter((f) => f.endsWith('.img')).sort().map((f) => path.join(what.imagesDir, f))
    : what.files;
  const out: Record<string, AnyImage | { raw: number }> = {};
  for (const f of files) {
    out[path.basename(f)] = isRawImage(path.basename(f)) ? { raw: fs.statSync(f).size } : readImageFile(f);
  }
  return out;
}
