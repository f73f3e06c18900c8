import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, requirePid, flag, optString } from './args.js';
import { OPTIONS, unsupportedFor } from './options.js';
import { StasisError } from '../errors.js';

const refused = (argv: string[], code: string, re: RegExp) =>
  assert.throws(() => parseArgs(argv), (e: unknown) => e instanceof StasisError && e.code === code && re.test(e.message));

test('parseArgs() takes CRIU\'s short and long forms of the same option alike', () => {
  for (const argv of [
    ['dump', '-t', '42', '-D', 'img', '-R', '-j'],
    ['dump', '--tree', '42', '--images-dir', 'img', '--leave-running', '--shell-job'],
    ['dump', '--tree=42', '--images-dir=img', '-Rj'],
    ['dump', '-t42', '-Dimg', '-R', '--shell-job'],
    ['-t', '42', 'dump', '-D', 'img', '-jR'],
  ]) {
    const a = parseArgs(argv);
    assert.equal(a.verb, 'dump');
    assert.equal(requirePid(a), 42, argv.join(' '));
    assert.equal(optString(a, 'images-dir'), 'img');
    assert.ok(flag(a, 'leave-running') && flag(a, 'shell-job'), argv.join(' '));
  }
});

test('parseArgs() reads -v, -vv, -v4 and --verbosity=N as CRIU\'s log levels', () => {
  assert.equal(parseArgs(['dump', '-v']).opts.get('verbosity'), 3);
  assert.equal(parseArgs(['dump', '-vv']).opts.get('verbosity'), 4);
  assert.equal(parseArgs(['dump', '-v4']).opts.get('verbosity'), 4);
  assert.equal(parseArgs(['dump', '-v1']).opts.get('verbosity'), 1);
  assert.equal(parseArgs(['restore', '--verbosity=0']).opts.get('verbosity'), 0);
  refused(['dump', '-vx'], 'E_BAD_ARGS', /-v level "x"/);
});

test('parseArgs() refuses an unknown option by name, long or short', () => {
  refused(['dump', '-t', '1', '--bogus'], 'E_BAD_ARGS', /Unknown option --bogus/);
  refused(['dump', '-x'], 'E_BAD_ARGS', /Unknown option -x/);
  refused(['dump', '-jq'], 'E_BAD_ARGS', /Unknown option -q/);
  refused(['restore', '--no-bogus'], 'E_BAD_ARGS', /Unknown option --no-bogus/);
});

test('parseArgs() refuses an option of another verb, a missing value, a stray word, an unknown verb', () => {
  refused(['restore', '-t', '5'], 'E_BAD_ARGS', /-t does not apply to restore/);
  refused(['dump', '-R', '-D'], 'E_BAD_ARGS', /-D needs a value/);
  refused(['dump', '--leave-running=yes'], 'E_BAD_ARGS', /takes no value/);
  refused(['dump', 'extra'], 'E_BAD_ARGS', /Unexpected argument "extra"/);
  refused(['frobnicate'], 'E_BAD_ARGS', /Unknown command "frobnicate"/);
  refused(['-R'], 'E_BAD_ARGS', /needs a command/);
});

test('parseArgs() refuses each CRIU option stasis does not support yet, naming it and why', () => {
  const unsupported = OPTIONS.filter((o) => o.unsupported);
  assert.ok(unsupported.length > 20);
  for (const o of unsupported) {
    const verb = o.verbs.find((v) => unsupportedFor(o, v))!;
    const argv = [verb, o.kind === 'value' ? `--${o.long}=x` : `--${o.long}`];
    refused(argv, 'E_UNSUPPORTED', new RegExp(`--${o.long} is not supported: .+`));
  }
  refused(['page-server'], 'E_UNSUPPORTED', /page-server command is not supported/);
});

test('parseArgs() takes --no-NAME for a flag, and an unsupported flag turned off is no request', () => {
  assert.equal(parseArgs(['dump', '--no-leave-running']).opts.get('leave-running'), false);
  assert.equal(parseArgs(['dump', '--no-tcp-established']).opts.get('tcp-established'), false);
  assert.equal(parseArgs(['dump', '--manage-cgroups=full', '--no-manage-cgroups']).verb, 'dump');
});

test('parseArgs() keeps every value of a repeatable option, and show\'s file names', () => {
  const a = parseArgs(['show', '-i', 'a.img', '--input', 'b.img', 'c.img']);
  assert.deepEqual(a.opts.get('input'), ['a.img', 'b.img']);
  assert.deepEqual(a.rest, ['c.img']);
});

test('parseArgs() leaves help and version to any verb', () => {
  assert.equal(parseArgs(['--help']).opts.get('help'), true);
  assert.equal(parseArgs(['dump', '-h']).verb, 'dump');
  assert.equal(parseArgs(['-V']).opts.get('version'), true);
});
