// The stasis command, started ahead and run when told: a line on stdin starts main() with
// the arguments given. The stress test pays node's start-up while the previous trial is
// checked, and kills a stasis that is already at work.
import { main } from '../../../src/cli/main.js';

// Without arguments (node --test runs every file of the suite's tree) it does nothing.
if (process.argv.length > 2) {
  process.stdin.once('data', () => {
    process.stdin.pause();
    main(process.argv.slice(2)).then((code) => process.exit(code), () => process.exit(70));
  });
}
