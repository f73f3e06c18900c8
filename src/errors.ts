// Errors people can act on: every failure stasis reports carries a stable code.

export type StasisErrorCode =
  | 'E_NO_PROCESS'
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
  | 'E_GHOST_LIMIT'
  /** The run was cancelled (an AbortSignal): nothing was left behind. */
  | 'E_ABORTED'
  /** A defect of stasis itself: please report it. */
  | 'E_INTERNAL';

/**
 * Control characters shown as escapes (`\x00`, `\x1b`, `\u2028`): messages quote names and
 * bytes out of images and /proc, and a NUL, an escape sequence or a line break in them must
 * not reach a terminal or a log raw.
 */
export function escapeControl(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16)}`;
  });
}

export class StasisError extends Error {
  readonly code: StasisErrorCode;
  constructor(code: StasisErrorCode, message: string, options?: { cause?: unknown }) {
    super(escapeControl(message), options);
    this.name = 'StasisError';
    this.code = code;
  }
}
