// Images hold a process's memory and secrets: the directory stasis makes is 0700, and every
// file it writes there 0600 (also one that was there before with a wider mode).
import fs from 'node:fs';

export const IMAGE_DIR_MODE = 0o700;
export const IMAGE_FILE_MODE = 0o600;

/** Makes the images directory (and its missing parents) 0700; one that exists keeps its mode. */
export function makeImagesDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: IMAGE_DIR_MODE });
}

/** Opens `file` for writing from scratch, 0600. */
export function createImageFile(file: string): number {
  // Readable too: the pages spliced into a pages file are summed through read-only mappings of it (file-window.ts).
  const fd = fs.openSync(file, 'w+', IMAGE_FILE_MODE);
  fs.fchmodSync(fd, IMAGE_FILE_MODE);
  return fd;
}

/** Writes a whole file, 0600. */
export function writePrivateFile(file: string, data: string | Uint8Array): void {
  const fd = createImageFile(file);
  try {
    fs.writeFileSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}
