// Run by `npm run bundle` on dist/src/bundle/cli.cjs. esbuild's CommonJS output wraps a Node
// built-in anew for every module that imports it (`__toESM(require("node:fs"))`: 97 modules
// import node:fs), and each wrap defines a getter per export of the module: 5-10 ms of every
// command's start-up, measured with --cpu-prof. The wraps are the same live views of the same
// module, so one per module (and mode) does: the calls go through a memo. Where esbuild's
// output has changed and no call is found, the bundle is left as it is, with a warning.
import fs from 'node:fs';

const file = process.argv[2];
const src = fs.readFileSync(file, 'utf8');
const at = src.indexOf('var __toESM = ');
if (at < 0 || !src.includes('__toESM(require(')) {
  process.stderr.write(`once-builtins: no __toESM(require(...)) in ${file}: left as esbuild wrote it\n`);
} else {
  const memo = 'var __toESMWraps = new Map();\n'
    + 'var __toESMOnce = (mod, isNodeMode) => { let w = __toESMWraps.get(mod); if (!w) __toESMWraps.set(mod, w = []); return w[isNodeMode ? 1 : 0] ??= __toESM(mod, isNodeMode); };\n';
  fs.writeFileSync(file, src.slice(0, at) + memo + src.slice(at).replaceAll('__toESM(require(', '__toESMOnce(require('));
}
