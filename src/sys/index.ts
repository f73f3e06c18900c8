export * from './syscall-table.js';
export * from './syscall-error.js';
export { addressOf, syscall, syscallRaw } from './libc.js';
export * from './ptrace.js';
export * from './regs.js';
export * from './inject.js';
export * from './task-mem.js';
export * from './process.js';
export * from './spawn.js';
