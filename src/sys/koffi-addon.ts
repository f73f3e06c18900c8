// koffi, the one way stasis makes syscalls: its native addon straight away where it is where
// koffi installs it, at the version of the package. koffi's index.js would load the same
// addon, after `https` and with it tls, net, http and the streams (for its installer): 4-5 ms
// of every command's start-up. Anywhere else (another layout, musl), koffi's own loader.
// Loaded on first use, not as the module is evaluated: the command line's start-up snapshot
// (tools/build-snapshot.cjs) holds every module evaluated, and a native addon cannot be in it.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

type Koffi = typeof import('koffi');

/**
 * koffi's package.json: where stasis's own node_modules has it (this module, and each bundle
 * of dist/src/bundle, sits three folders below the package's root), else as require() finds it
 * (stasis installed as a dependency, koffi hoisted above it). The lookup costs 1.5 ms cold.
 */
function koffiPackage(req: NodeJS.Require): string {
  const own = fileURLToPath(new URL('../../../node_modules/koffi/package.json', import.meta.url));
  return fs.existsSync(own) ? own : req.resolve('koffi/package.json');
}

function load(): Koffi {
  const req = createRequire(import.meta.url);
  try {
    // The package found once, then the addon by its path, opened as require() opens one:
    // each bare require() walks node_modules again (about 2 ms of a small dump, cold).
    const pkg = koffiPackage(req);
    const { version } = JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string };
    const addon = { exports: {} as Koffi & { version?: string } };
    const file = path.join(path.dirname(pkg), 'build', 'koffi', `${process.platform}_${process.arch}`, 'koffi.node');
    process.dlopen(addon, file);
    if (addon.exports.version === version) {
      addonFile = file;
      return addon.exports;
    }
  } catch {
    /* not laid out as expected: koffi finds it */
  }
  return req('koffi') as Koffi;
}

let loaded: Koffi | undefined;
let addonFile: string | undefined;

/**
 * The addon's file where koffi() opened it by its path (else undefined: koffi's own loader
 * found it): a worker thread opens it the same way (WORKER_KOFFI), 1 ms where require('koffi')
 * takes 7-10 (its index.js loads https, tls, net and http first).
 */
export function koffiAddonFile(): string | undefined {
  koffi();
  return addonFile;
}

/**
 * For a worker thread's eval'd code (CommonJS), with `workerData.koffiAt` koffiAddonFile() and
 * `workerData.from` a module's URL whose node_modules holds koffi: defines `koffi`.
 */
export const WORKER_KOFFI = `
const koffi = (() => {
  if (workerData.koffiAt) {
    const m = { exports: {} };
    process.dlopen(m, workerData.koffiAt);
    return m.exports;
  }
  return require('node:module').createRequire(workerData.from)('koffi');
})();
`;

/** Whether koffi's addon is loaded (by an earlier call of koffi()). */
export function koffiLoaded(): boolean {
  return loaded !== undefined;
}

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
