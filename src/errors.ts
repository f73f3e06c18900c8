// Errors people can act on: every failure stasis reports carries a stable code.

export type StasisErrorCode =
  | 'E_NO_PROCESS'
  | 'E_UNSUPPORTED_FD'
  | 'E_UNSUPPORTED'
  | 'E_BAD_MAGIC'
  | 'E_TRUNCATED'
  | 'E_CORRUPT'
  | 'E_PID_TAKEN'
  | 'E_NO_IMAGE'
  | 'E_BAD_ARGS'
  | 'E_DUMP_FAILED'
  | 'E_RESTORE_FAILED'
  | 'E_INJECT'
  | 'E_GHOST_LIMIT';

export class StasisError extends Error {
  readonly code: StasisErrorCode;
  constructor(code: StasisErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StasisError';
    this.code = code;
  }
}
