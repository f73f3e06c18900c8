// Image files in an images directory: whole-file reads and writes over encodeImage()/decodeImage().
import fs from 'node:fs';
import path from 'node:path';
import { StasisError } from '../errors.js';
import { decodeAnyImage, decodeImage, decodePagemapImage, encodeImage, type AnyImage, type DecodeOptions } from './codec.js';
import { imageFileName, type ImageContent, type ImageKindName, type NameArg } from './image-kinds.js';
import { writePrivateFile } from './image-modes.js';

export function imagePath<K extends ImageKindName>(dir: string, kind: K, nameArg: NameArg<K>): string {
  return path.join(dir, imageFileName(kind, nameArg));
}

export function imageExists<K extends ImageKindName>(dir: string, kind: K, nameArg: NameArg<K>): boolean {
  return fs.existsSync(imagePath(dir, kind, nameArg));
}

/**
 * Writes a whole image. The file appears complete or not at all: it is written under a
 * temporary name and renamed, so a failed dump never leaves a short image behind.
 */
export function writeImage<K extends ImageKindName>(
  dir: string, kind: K, nameArg: NameArg<K>, content: ImageContent<K>,
): string {
  const file = imagePath(dir, kind, nameArg);
  const bytes = encodeImage(kind, content, { fileName: path.basename(file) });
  writeFileAtomic(file, bytes);
  return file;
}

export function readImage<K extends ImageKindName>(
  dir: string, kind: K, nameArg: NameArg<K>, opts: Omit<DecodeOptions, 'fileName'> = {},
): ImageContent<K> {
  const file = imagePath(dir, kind, nameArg);
  const bytes = readImageBytes(file, `No ${path.basename(file)} in ${dir}`);
  return decodeImage(kind, bytes, { ...opts, fileName: path.basename(file) });
}

/** A pagemap image, its entries as numbers (decodePagemapImage). */
export function readPagemapImage(dir: string, kind: 'pagemap' | 'shmem-pagemap', id: number): ReturnType<typeof decodePagemapImage> {
  const file = imagePath(dir, kind, id);
  return decodePagemapImage(kind, readImageBytes(file, `No ${path.basename(file)} in ${dir}`), { fileName: path.basename(file) });
}

/** Reads an image of any kind, found from its magic words (for `stasis show`). */
export function readImageFile(file: string, opts: Omit<DecodeOptions, 'fileName'> = {}): AnyImage {
  const bytes = readImageBytes(file, `No image at ${file}`);
  return decodeAnyImage(bytes, { ...opts, fileName: path.basename(file) });
}

function readImageBytes(file: string, missing: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StasisError('E_NO_IMAGE', missing, { cause: err });
    throw err;
  }
}

/** Temporary name of an image being written; never matches an image kind's pattern. */
export function tempName(file: string): string {
  return `${file}.${process.pid}.tmp`;
}

export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = tempName(file);
  try {
    writePrivateFile(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
