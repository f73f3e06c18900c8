// Command-line parsing, with CRIU's option names.
import { StasisError } from '../errors.js';

export interface ParsedArgs {
  command: string;
  flags: Map<string, string | true>;
  rest: string[];
}

const WITH_VALUE = new Set(['-t', '--tree', '-D', '--images-dir', '--prev-images-dir', '--track-backend', '-o', '--log-file', '-i', '--ghost-limit']);
const ALIASES: Record<string, string> = { '-t': '--tree', '-D': '--images-dir', '-d': '--restore-detached', '-h': '--help', '-i': '--input' };

export function parseArgs(argv: string[]): ParsedArgs {
  const [command = 'help', ...tail] = argv;
  const flags = new Map<string, string | true>();
  const rest: string[] = [];
  for (let i = 0; i < tail.length; i++) {
    const a = tail[i] as string;
    if (!a.startsWith('-')) {
      rest.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const rawName = eq > 0 ? a.slice(0, eq) : a;
    const name = ALIASES[rawName] ?? rawName;
    if (eq > 0) flags.set(name, a.slice(eq + 1));
    else if (WITH_VALUE.has(rawName) || WITH_VALUE.has(name)) {
      const v = tail[++i];
      if (v === undefined) throw new StasisError('E_BAD_ARGS', `Option ${rawName} needs a value`);
      flags.set(name, v);
    } else flags.set(name, true);
  }
  return { command, flags, rest };
}

export function requireString(a: ParsedArgs, name: string): string {
  const v = a.flags.get(name);
  if (typeof v !== 'string' || v === '') throw new StasisError('E_BAD_ARGS', `Missing ${name}`);
  return v;
}

export function requirePid(a: ParsedArgs): number {
  const v = requireString(a, '--tree');
  if (!/^[1-9][0-9]*$/.test(v)) throw new StasisError('E_BAD_ARGS', `Invalid pid ${JSON.stringify(v)}: expected a positive number`);
  return Number(v);
}
