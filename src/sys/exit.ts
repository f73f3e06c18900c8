// How the command line ends once its command is done.
import { koffiLoaded } from './koffi-addon.js';
import { syscallRaw } from './libc.js';

/**
 * Ends the process with `code` at once: 'exit' listeners run, as process.exit() runs them, then
 * exit_group, without Node's teardown (its environment and heap freed, V8's threads joined,
 * libc's atexit handlers: about 2 ms of a small dump here). For when nothing is left to do: call
 * it from 'beforeExit', which comes once the event loop is empty (stdout and stderr written,
 * no worker thread, timer or child left). Where koffi is not loaded yet (`--help`, `-V`, a
 * usage error) it is not loaded for this: process.exit(). Nor where node writes a profile or
 * coverage as it exits (--cpu-prof, --heap-prof, NODE_V8_COVERAGE): process.exit() writes them.
 * `trace` is told which, as it is done.
 */
export function exitNow(code: number, trace?: (how: 'exit_group' | 'process.exit()') => void): never {
  if (!koffiLoaded() || profiled()) {
    trace?.('process.exit()');
    process.exit(code);
  }
  process.exitCode = code;
  process.emit('exit', code);
  trace?.('exit_group');
  syscallRaw('exit_group', code);
  throw new Error('exit_group returned');
}

/** Whether node was asked for what it writes at its exit: a CPU or heap profile, V8 coverage. */
function profiled(): boolean {
  return process.env.NODE_V8_COVERAGE !== undefined || process.execArgv.some((a) => /^--(cpu|heap)-prof/.test(a));
}
