// Syscall failures carry code, errno and syscall, as Node's own system errors do.
import os from 'node:os';
import util from 'node:util';

/** The kernel's restart codes, which libuv does not name (they never reach user space). */
const RESTART_NAMES: Record<number, string> = {
  512: 'ERESTARTSYS', 513: 'ERESTARTNOINTR', 514: 'ERESTARTNOHAND', 516: 'ERESTART_RESTARTBLOCK',
};

/** Names libuv does not have (ECHILD, ENOLCK, EDEADLK, ...), first name of each number. */
const OS_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(os.constants.errno)) if (!OS_NAMES.has(n)) OS_NAMES.set(n, name);

/** The name of an errno (`ENOENT`), as util.getSystemErrorName gives it, or os.constants.errno where libuv has none. */
export function errnoName(errno: number): string {
  const restart = RESTART_NAMES[errno];
  if (restart) return restart;
  if (!Number.isInteger(errno) || errno <= 0 || errno >= 4096) return `E${errno}`;
  const name = util.getSystemErrorName(-errno);
  return name.startsWith('Unknown') ? OS_NAMES.get(errno) ?? `E${errno}` : name;
}

/** The errno name of a raw syscall result (a negative errno): `failed(-2n)` is `ENOENT`. */
export function failedWith(r: bigint | number): string {
  return errnoName(-Number(r));
}

export class SyscallError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, context?: string) {
    const code = errnoName(errno);
    super(`${syscall}${context ? ` (${context})` : ''} failed with ${code}`);
    this.name = 'SyscallError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}
