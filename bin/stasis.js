#!/usr/bin/env node
// The command line: from the bundle `npm run build` makes (dist/src/bundle: the CLI and the
// engine's worker in a few files, which load in a third of the time the modules take one by
// one), or from the modules where it is not there.
import fs from 'node:fs';

const bundle = new URL('../dist/src/bundle/main.js', import.meta.url);
const { main } = await import(fs.existsSync(bundle) ? bundle.href : '../dist/src/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
