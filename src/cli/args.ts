// Command-line parsing, strict, with CRIU's option names and forms (getopt_long's: --name VALUE,
// --name=VALUE, -x VALUE, -xVALUE, -v4, -vvv, --no-NAME for flags). An unknown option, an
// option of another verb, a CRIU option stasis does not support yet: each is an error naming it.
import { StasisError } from '../errors.js';
import { OPTIONS, VERBS, MISSING_VERBS, optionByLong, optionByShort, unsupportedFor, type OptionSpec, type Verb } from './options.js';

export interface ParsedArgs {
  /** The verb; undefined for `stasis`, `stasis --help`, `stasis --version`. */
  verb: Verb | undefined;
  /** Options by long name: true/false for flags, a string for values, every value for repeatable ones, a number for counts. */
  opts: Map<string, string | boolean | number | string[]>;
  /** Words that are not options (show's file names). */
  rest: string[];
}

const bad = (msg: string) => new StasisError('E_BAD_ARGS', msg);

export function parseArgs(argv: string[]): ParsedArgs {
  const opts: ParsedArgs['opts'] = new Map();
  const rest: string[] = [];
  let verb: Verb | undefined;
  const pending: { spec: OptionSpec; shown: string }[] = [];

  const set = (spec: OptionSpec, shown: string, value: string | boolean | number) => {
    pending.push({ spec, shown });
    if (spec.many) {
      const list = opts.get(spec.long);
      opts.set(spec.long, [...(Array.isArray(list) ? list : []), String(value)]);
    } else opts.set(spec.long, value);
  };
  const count = (spec: OptionSpec, shown: string, v: string | undefined) => {
    if (v === undefined || v === '') {
      const now = opts.get(spec.long);
      set(spec, shown, (typeof now === 'number' ? now : 2) + 1);
      return;
    }
    if (/^v+$/.test(v)) {
      const now = opts.get(spec.long);
      set(spec, shown, (typeof now === 'number' ? now : 2) + 1 + v.length);
      return;
    }
    if (!/^[0-9]$/.test(v)) throw bad(`Invalid ${shown} level ${JSON.stringify(v)}: expected 0 to 4`);
    set(spec, shown, Number(v));
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const inline = eq > 0 ? a.slice(eq + 1) : undefined;
      let spec = optionByLong(name);
      if (!spec && name.startsWith('no-')) {
        const neg = optionByLong(name.slice(3));
        if (neg?.kind === 'flag' || neg?.kind === 'optional') {
          if (inline !== undefined) throw bad(`Option --${name} takes no value`);
          set(neg, `--${name}`, false);
          continue;
        }
      }
      if (!spec) throw bad(`Unknown option --${name}; see stasis ${verb ?? ''}${verb ? ' ' : ''}--help`);
      const shown = `--${name}`;
      if (spec.kind === 'flag') {
        if (inline !== undefined) throw bad(`Option ${shown} takes no value`);
        set(spec, shown, true);
      } else if (spec.kind === 'count') count(spec, shown, inline);
      else if (spec.kind === 'optional') set(spec, shown, inline ?? true);
      else {
        const v = inline ?? argv[++i];
        if (v === undefined) throw bad(`Option ${shown} needs a value`);
        set(spec, shown, v);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // A group of short options: each a flag, until one that takes the rest as its value.
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const spec = optionByShort(c);
        if (!spec) throw bad(`Unknown option -${c}; see stasis ${verb ?? ''}${verb ? ' ' : ''}--help`);
        const shown = `-${c}`;
        if (spec.kind === 'flag') {
          set(spec, shown, true);
          continue;
        }
        const attached = a.slice(j + 1);
        if (spec.kind === 'count') count(spec, shown, attached);
        else {
          const v = attached !== '' ? attached : argv[++i];
          if (v === undefined) throw bad(`Option ${shown} needs a value`);
          set(spec, shown, v);
        }
        break;
      }
      continue;
    }
    if (verb === undefined && rest.length === 0) {
      if ((VERBS as readonly string[]).includes(a)) {
        verb = a as Verb;
        continue;
      }
      const why = MISSING_VERBS[a];
      if (why) throw new StasisError('E_UNSUPPORTED', `CRIU's ${a} command is not supported: ${why}`);
      throw bad(`Unknown command ${JSON.stringify(a)}; see stasis --help`);
    }
    rest.push(a);
  }

  // Decided once the verb is known: an option may come before it, as with CRIU.
  for (const { spec, shown } of pending) {
    if (spec.long === 'help' || spec.long === 'version') continue;
    if (verb === undefined) throw bad(`Option ${shown} needs a command; see stasis --help`);
    if (!spec.verbs.includes(verb)) throw bad(`Option ${shown} does not apply to ${verb}; see stasis ${verb} --help`);
    const why = unsupportedFor(spec, verb);
    if (why && opts.get(spec.long) !== false) {
      throw new StasisError('E_UNSUPPORTED', `Option ${shown} is not supported: ${why}`);
    }
  }
  if (rest.length && verb !== 'show' && verb !== 'swrk') throw bad(`Unexpected argument ${JSON.stringify(rest[0])}; see stasis ${verb ?? ''}${verb ? ' ' : ''}--help`);
  return { verb, opts, rest };
}

export function flag(a: ParsedArgs, name: string): boolean {
  return a.opts.get(name) === true;
}

export function optString(a: ParsedArgs, name: string): string | undefined {
  const v = a.opts.get(name);
  if (v === undefined || v === false) return undefined;
  if (typeof v !== 'string') throw bad(`Option --${name} needs a value`);
  return v;
}

export function requireString(a: ParsedArgs, name: string): string {
  const v = optString(a, name);
  if (v === undefined || v === '') {
    const spec = optionByLong(name);
    throw bad(`Missing ${spec?.short ? `-${spec.short}/` : ''}--${name}${spec?.arg ? ` ${spec.arg}` : ''}; see stasis ${a.verb ?? ''} --help`);
  }
  return v;
}

export function requirePid(a: ParsedArgs): number {
  const v = requireString(a, 'tree');
  if (!/^[1-9][0-9]*$/.test(v)) throw bad(`Invalid pid ${JSON.stringify(v)}: expected a positive number`);
  return Number(v);
}

/** The help text of a verb: its supported options, as CRIU lists them. */
export function verbHelp(verb: Verb, summary: string): string {
  const lines = OPTIONS.filter((o) => o.help && !unsupportedFor(o, verb) && o.verbs.includes(verb)).map((o) => {
    const names = `${o.short ? `-${o.short}|` : '   '}--${o.long}${o.arg ? ` ${o.arg}` : ''}`;
    return `  ${names.padEnd(28)} ${o.help}`;
  });
  return `Usage: stasis ${verb} [OPTIONS]\n\n${summary}\n\nOptions:\n${lines.join('\n')}\n`;
}
