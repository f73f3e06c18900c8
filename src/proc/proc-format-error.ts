// The one error the parsers throw. src/proc imports nothing of ours, so this is not a
// StasisError; callers wrap it (E_CORRUPT or E_UNSUPPORTED) with the pid they were reading.

export class ProcFormatError extends Error {
  readonly code = 'E_PROC_FORMAT';
  /** The /proc file, as a reader would name it: `maps`, `fdinfo`, `locks`. */
  readonly file: string;
  /** The offending line, when there is one. */
  readonly line: string | undefined;

  constructor(file: string, detail: string, line?: string) {
    super(`Cannot parse /proc ${file}: ${detail}${line === undefined ? '' : ` in line ${JSON.stringify(line)}`}`);
    this.name = 'ProcFormatError';
    this.file = file;
    this.line = line;
  }
}
