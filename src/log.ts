// The log of one dump or restore (CRIU's -o FILE -vN): every step at the level it belongs to,
// each line stamped with the seconds since the run began, as CRIU's logs are. Passed in the
// options and contexts, never global.
import fs from 'node:fs';

/** 1 errors, 2 warnings (default), 3 information, 4 everything (each fd, each injected syscall). */
export type LogLevel = 0 | 1 | 2 | 3 | 4;

export interface Log {
  readonly level: LogLevel;
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

export const NO_LOG: Log = { level: 0, error() {}, warn() {}, info() {}, debug() {} };

/** A log written to a file, emptied first as CRIU's -o is, then line by line, so a killed tool leaves what it did. */
export class FileLog implements Log {
  private readonly fd: number;
  private readonly t0 = performance.now();
  constructor(file: string, readonly level: LogLevel) {
    this.fd = fs.openSync(file, 'w', 0o600);
  }
  private line(tag: string, msg: string): void {
    const s = ((performance.now() - this.t0) / 1000).toFixed(6).padStart(9, '0');
    fs.writeSync(this.fd, `(${s}) ${tag}${msg}\n`);
  }
  error(msg: string): void {
    if (this.level >= 1) this.line('Error: ', msg);
  }
  warn(msg: string): void {
    if (this.level >= 2) this.line('Warn: ', msg);
  }
  info(msg: string): void {
    if (this.level >= 3) this.line('', msg);
  }
  debug(msg: string): void {
    if (this.level >= 4) this.line('', msg);
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}
