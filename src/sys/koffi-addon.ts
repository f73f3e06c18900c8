// koffi, the one way stasis makes syscalls: its native addon straight away where it is where
// koffi installs it, at the version of the package. koffi's index.js would load the same
// addon, after `https` and with it tls, net, http and the streams (for its installer): 4-5 ms
// of every command's start-up. Anywhere else (another layout, musl), koffi's own loader.
// Loaded on first use, not as the module is evaluated: the command line's start-up snapshot
// (tools/build-snapshot.cjs) holds every module evaluated, and a native addon cannot be in it.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');

function load(): Koffi {
  const req = createRequire(import.meta.url);
  try {
    // One lookup of the package, then the addon by its path, opened as require() opens one:
    // each bare require() walks node_modules again (about 2 ms of a small dump, cold).
    const pkg = req.resolve('koffi/package.json');
    const { version } = JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string };
    const addon = { exports: {} as Koffi & { version?: string } };
    process.dlopen(addon, path.join(path.dirname(pkg), 'build', 'koffi', `${process.platform}_${process.arch}`, 'koffi.node'));
    if (addon.exports.version === version) return addon.exports;
  } catch {
    /* not laid out as expected: koffi finds it */
  }
  return req('koffi') as Koffi;
}

let loaded: Koffi | undefined;

/** koffi's addon, loaded by the first call. */
export function koffi(): Koffi {
  return (loaded ??= load());
}

let libcLib: ReturnType<Koffi['load']> | undefined;

/** libc, opened by the first call. */
export function libc(): ReturnType<Koffi['load']> {
  return (libcLib ??= koffi().load('libc.so.6'));
}

/** A function type made by the first call: `koffi().proto(sig)` once. */
export function protoOnFirstUse(sig: string): () => ReturnType<Koffi['proto']> {
  let t: ReturnType<Koffi['proto']> | undefined;
  return () => (t ??= koffi().proto(sig));
}
