// How an fd kind's dump or restore fails: a StasisError passes as it is; anything else (a
// failed syscall, above all) becomes one with `code` and the step it broke, the cause kept.
import { StasisError, type StasisErrorCode } from '../errors.js';
import { SyscallError } from '../sys/index.js';

/** The error to throw for `err`, caught at `step`. */
export function failure(code: StasisErrorCode, step: string, err: unknown): StasisError {
  if (err instanceof StasisError) return err;
  const why = err instanceof SyscallError ? err.message : String(err);
  return new StasisError(code, `${step}: ${why}`, { cause: err });
}

/** `f()`, whose StasisError (a refusal, say) is thrown again naming the file: "Cannot dump WHAT: ...". */
export function dumpStep<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof StasisError) throw new StasisError(err.code, `Cannot dump ${what}: ${err.message}`);
    throw err;
  }
}
