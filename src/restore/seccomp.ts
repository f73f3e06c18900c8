// Seccomp put back on a thread (dump/seccomp.ts wrote it): its filters installed oldest
// first (the kernel runs them all; of equal actions the newest one's data wins), or strict
// mode. Installed last, once the thread runs no more of the restore's own work but its final
// injected syscalls, which PTRACE_O_SUSPEND_SECCOMP keeps out of the filters' reach (it ends
// with the detach). Before the credentials are dropped: without no_new_privs a filter needs
// CAP_SYS_ADMIN.
import { setOptions, failedWith, PTRACE_O, type Injector } from '../sys/index.js';
import { SeccompMode, type CoreEntry } from '../image/gen/stasis/core_pb.js';
import { isFieldSet } from '@bufbuild/protobuf';
import { SeccompFilterSchema, type SeccompEntry, type SeccompFilter } from '../image/gen/stasis/seccomp_pb.js';
import { TRACE_OPTIONS } from './create-task.js';
import { StasisError } from '../errors.js';

const SECCOMP_SET_MODE_FILTER = 1, SECCOMP_FILTER_FLAG_TSYNC = 1;
const PR_SET_SECCOMP = 22;

/** The chain a thread core names (its oldest filter; each prev names the next installed), oldest first. */
export function seccompChain(image: SeccompEntry | undefined, top: number, tid: number): SeccompFilter[] {
  const chain: SeccompFilter[] = [];
  for (let i: number | undefined = top; i !== undefined;) {
    const f: SeccompFilter | undefined = image?.seccompFilters[i];
    if (!f) throw new StasisError('E_CORRUPT', `Thread ${tid} names seccomp filter ${i}, which seccomp.img lacks`);
    if (chain.length >= image!.seccompFilters.length) throw new StasisError('E_CORRUPT', `The seccomp filters of thread ${tid} make a loop in seccomp.img`);
    if (f.filter.length % 8 || !f.filter.length) throw new StasisError('E_CORRUPT', `Seccomp filter ${i} of thread ${tid} is ${f.filter.length} bytes, not whole instructions`);
    chain.push(f);
    i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
  }
  return chain;
}

/**
 * Whether the thread gets its filters from its leader's SECCOMP_FILTER_FLAG_TSYNC (the
 * same chain, which the dump wrote once, with that flag).
 */
export function syncedByLeader(core: CoreEntry, leader: CoreEntry, image: SeccompEntry | undefined): boolean {
  const th = core.threadCore!, lt = leader.threadCore!;
  if (th.seccompMode !== SeccompMode.filter || lt.seccompMode !== SeccompMode.filter || th.seccompFilter !== lt.seccompFilter) return false;
  return ((image?.seccompFilters[lt.seccompFilter ?? -1]?.flags ?? 0) & SECCOMP_FILTER_FLAG_TSYNC) !== 0;
}

export function installSeccomp(inj: Injector, tid: number, core: CoreEntry, image: SeccompEntry | undefined): void {
  const th = core.threadCore!;
  const mode = th.seccompMode ?? SeccompMode.disabled;
  if (mode === SeccompMode.disabled) return;
  setOptions(tid, TRACE_OPTIONS | PTRACE_O.SUSPEND_SECCOMP);
  if (mode === SeccompMode.strict) {
    const r = inj.call('prctl', PR_SET_SECCOMP, SeccompMode.strict, 0, 0, 0);
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot put thread ${tid} in seccomp strict mode: ${failedWith(r)}`);
    return;
  }
  if (mode !== SeccompMode.filter) throw new StasisError('E_CORRUPT', `Thread ${tid} has seccomp mode ${mode}`);
  for (const [i, f] of seccompChain(image, th.seccompFilter ?? -1, tid).entries()) {
    inj.resetScratch();
    const prog = inj.put(Buffer.from(f.filter));
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(f.filter.length / 8, 0);
    fprog.writeBigUInt64LE(prog, 8);
    const r = inj.call('seccomp', SECCOMP_SET_MODE_FILTER, f.flags ?? 0, inj.put(fprog));
    if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot install seccomp filter ${i + 1} of thread ${tid} (flags 0x${(f.flags ?? 0).toString(16)}): ${failedWith(r)}`);
    // With TSYNC, a positive result is the tid of a thread that could not be synced.
    if (r > 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot sync seccomp filter ${i + 1} of thread ${tid} to thread ${r}`);
  }
}
