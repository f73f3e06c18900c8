// Number parsing shared by the parsers: strict (Number('') is 0, Number('1e3') is 1000, and
// neither is what the kernel wrote), and failing with the file and the field named.
import { ProcFormatError } from './proc-format-error.js';

const DECIMAL = /^-?[0-9]+$/;
const HEX = /^[0-9a-fA-F]+$/;
const OCTAL = /^[0-7]+$/;

function bad(file: string, what: string, text: string | undefined, kind: string, line?: string): ProcFormatError {
  const shown = text === undefined ? 'missing' : `${JSON.stringify(text)}, not ${kind}`;
  return new ProcFormatError(file, `${what} is ${shown}`, line);
}

export function decimal(text: string | undefined, file: string, what: string, line?: string): number {
  if (text === undefined || !DECIMAL.test(text)) throw bad(file, what, text, 'a decimal number', line);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw bad(file, what, text, 'a number below 2^53', line);
  return n;
}

export function decimalBig(text: string | undefined, file: string, what: string, line?: string): bigint {
  if (text === undefined || !DECIMAL.test(text)) throw bad(file, what, text, 'a decimal number', line);
  return BigInt(text);
}

export function hexBig(text: string | undefined, file: string, what: string, line?: string): bigint {
  if (text === undefined || !HEX.test(text)) throw bad(file, what, text, 'a hexadecimal number', line);
  return BigInt(`0x${text}`);
}

export function hex(text: string | undefined, file: string, what: string, line?: string): number {
  if (text === undefined || !HEX.test(text)) throw bad(file, what, text, 'a hexadecimal number', line);
  const n = parseInt(text, 16);
  if (!Number.isSafeInteger(n)) throw bad(file, what, text, 'a number below 2^53', line);
  return n;
}

export function octal(text: string | undefined, file: string, what: string, line?: string): number {
  if (text === undefined || !OCTAL.test(text)) throw bad(file, what, text, 'an octal number', line);
  const n = parseInt(text, 8);
  if (!Number.isSafeInteger(n)) throw bad(file, what, text, 'a number below 2^53', line);
  return n;
}

/** Lines of a text file without the empty one after the final newline. */
export function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/** Undoes the kernel's `\ooo` octal escapes (seq_escape in mountinfo, seq_show_option in options). */
export function unescapeOctal(text: string): string {
  return text.includes('\\') ? text.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) : text;
}
