// libc through koffi (koffi-addon.ts loads it; cpuid.ts alone calls code of its own). Every
// prototype is fixed (no variadic calls: they cost 60% more per call and lose 64-bit values);
// 64-bit values travel as BigInt.
import { koffi, libc } from './koffi-addon.js';
import { SYS, type SyscallName } from './syscall-table.js';
import { SyscallError } from './syscall-error.js';

type Arg = bigint | number;
type RawSyscall = (nr: number, ...args: Arg[]) => number | bigint;
type MemmoveAddr = (dst: Buffer | ArrayBufferView, src: Buffer | ArrayBufferView, n: number) => number | bigint;

// The two functions every syscall goes through are declared by their first call, which puts
// koffi's own function in their place: no indirection on the hot path once declared.
let rawSyscall: RawSyscall = (nr, ...args) => {
  rawSyscall = libc().func('int64 syscall(int64 nr, int64 a1, int64 a2, int64 a3, int64 a4, int64 a5, int64 a6)') as RawSyscall;
  return rawSyscall(nr, ...args);
};
let memmoveAddr: MemmoveAddr = (dst, src, n) => {
  memmoveAddr = libc().func('uint64 memmove(void *dst, void *src, size_t n)') as MemmoveAddr;
  return memmoveAddr(dst, src, n);
};

let spawnFns: ReturnType<typeof declareSpawnFns> | undefined;

/** posix_spawn and its attribute and file-action calls, declared by the first call. */
export function posixSpawnFns(): ReturnType<typeof declareSpawnFns> {
  return (spawnFns ??= declareSpawnFns());
}

const declareSpawnFns = () => ({
  spawn: libc().func(
    'int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)',
  ) as (pid: Int32Array, path: string, actions: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]) => number,
  actionsInit: libc().func('int posix_spawn_file_actions_init(void *a)') as (a: Buffer) => number,
  actionsDestroy: libc().func('int posix_spawn_file_actions_destroy(void *a)') as (a: Buffer) => number,
  addOpen: libc().func(
    'int posix_spawn_file_actions_addopen(void *a, int fd, const char *path, int flags, uint32 mode)',
  ) as (a: Buffer, fd: number, path: string, flags: number, mode: number) => number,
  addDup2: libc().func('int posix_spawn_file_actions_adddup2(void *a, int fd, int newfd)') as (
    a: Buffer,
    fd: number,
    newfd: number,
  ) => number,
  addClosefrom: libc().func('int posix_spawn_file_actions_addclosefrom_np(void *a, int from)') as (a: Buffer, from: number) => number,
  addChdir: libc().func('int posix_spawn_file_actions_addchdir_np(void *a, const char *path)') as (
    a: Buffer,
    path: string,
  ) => number,
  attrInit: libc().func('int posix_spawnattr_init(void *a)') as (a: Buffer) => number,
  attrDestroy: libc().func('int posix_spawnattr_destroy(void *a)') as (a: Buffer) => number,
  attrSetFlags: libc().func('int posix_spawnattr_setflags(void *a, short flags)') as (a: Buffer, f: number) => number,
  attrSetSigmask: libc().func('int posix_spawnattr_setsigmask(void *a, void *mask)') as (a: Buffer, m: Buffer) => number,
  attrSetSigdefault: libc().func('int posix_spawnattr_setsigdefault(void *a, void *mask)') as (
    a: Buffer,
    m: Buffer,
  ) => number,
});

/**
 * The buffers whose address was taken last, kept reachable: a buffer known to the kernel
 * only by its address (a syscall argument, an iovec's base) may have no JS use left, and a
 * collection that ran while the call was being set up frees its memory, which the kernel
 * then writes (getsockopt's length, recvmsg's name: heap corruption, `malloc(): unaligned
 * fastbin chunk detected`). A call uses a few buffers taken just before it: 64 leave room, and hold little memory.
 */
const RECENT = 64;
const recent: (Buffer | ArrayBufferView | undefined)[] = new Array<Buffer | ArrayBufferView | undefined>(RECENT);
let recentAt = 0;

/** The address of a Buffer's bytes in this process (stable: backing stores do not move); the buffer stays reachable for the next 64 calls. */
export function addressOf(buf: Buffer | ArrayBufferView): bigint {
  recent[recentAt] = buf;
  recentAt = (recentAt + 1) % RECENT;
  return BigInt(memmoveAddr(buf, buf, 0));
}

/**
 * Keeps buffers reachable up to this point. A buffer handed to the kernel only by address
 * (in a register or inside an iovec) is garbage to V8 once its last JS use is past, and a
 * collection during the syscall frees its memory while the kernel reads it: seen as
 * SETREGSET failing with EIO (zeroed registers, cs = 0) after thousands of injected calls.
 * Call it after the syscall with every buffer the syscall reads or writes by address.
 */
export function keepAlive(...bufs: (Buffer | ArrayBufferView)[]): void {
  for (const b of bufs) memmoveAddr(b, b, 0);
}

export function errno(): number {
  return koffi().errno();
}

/** Calls a system call; returns its result, or throws SyscallError on -1. */
export function syscall(name: SyscallName, ...args: Arg[]): bigint {
  const full: Arg[] = [0, 0, 0, 0, 0, 0];
  for (let i = 0; i < args.length; i++) full[i] = args[i] as Arg;
  const r = BigInt(rawSyscall(SYS[name], ...full));
  if (r === -1n) throw new SyscallError(name, koffi().errno());
  return r;
}

/** Like syscall() but returns -errno instead of throwing. */
export function syscallRaw(name: SyscallName, ...args: Arg[]): bigint {
  const full: Arg[] = [0, 0, 0, 0, 0, 0];
  for (let i = 0; i < args.length; i++) full[i] = args[i] as Arg;
  const r = BigInt(rawSyscall(SYS[name], ...full));
  return r === -1n ? -BigInt(koffi().errno()) : r;
}
