// The root as a child of stasis's caller (CRIU's --restore-sibling; runc sets rst_sibling on
// every restore and waits for the container's init itself). CRIU forks its root with
// CLONE_PARENT; stasis has no fork of its own, so its thread starts the stub program with
// CLONE_PARENT (spawnSibling) and the stub is the root: a clone with CLONE_PARENT by any
// child of stasis would be stasis's child, and an intermediate child of the caller would be
// left to it as a zombie. What createRootTask's stub does before it clones the root, the
// root does itself once born, as CRIU's root does (join_namespaces): all but entering a pid
// namespace, which stasis's thread does around the clone (CRIU's external pidns). A root born
// in a user namespace is no exec'd stub but a copy of stasis (see createSiblingRoot); its
// layout goes as a stub's does (address-space.ts unmaps all it finds). stasis traces the root
// as a tracer that is not its parent: ptrace stops reach stasis's waitpid, its exit goes to
// the caller.
import fs from 'node:fs';
import {
  Injector, ProcMem, SYSCALL_INT3, getRegs, seize, interrupt, waitPid, kill, spawnSibling, spareCodeOfSibling, syscallRaw, failedWith, SyscallError,
  PTRACE_EVENT,
} from '../sys/index.js';
import { StasisError } from '../errors.js';
import { COURIER_FD, type FdCourier } from './fd-courier.js';
import {
  HOLDER_NS, STASIS_PIDFD, STUB_ARGV, STUB_EXE, TRACE_OPTIONS, enterOwnTimeNs, joinNamespace, pidIsFree, stubMemfd, withSeizedStub, withUserNsHolder,
  type NewTask, type UserNsHolder,
} from './create-task.js';

const CLONE_NEWPID = 0x20000000, CLONE_NEWUSER = 0x10000000, CLONE_NEWTIME = 0x80;
const O_RDWR = 2, O_CLOEXEC = 0o2000000, F_SETFD = 2, FD_CLOEXEC = 1, EEXIST = 17, EINVAL = 22;

/** createRootTask's contract, the root a child of stasis's parent. */
export function createSiblingRoot(pid: number, nsFlags = 0, join: { file: string; flag: number }[] = [], timeOffsets?: string, holder?: UserNsHolder, courier?: FdCourier): NewTask {
  // Born in a user namespace (with its pid namespace), an exec there before it has maps would
  // take the root's capabilities in it away, and a pid namespace a holder makes cannot be
  // entered before it has an init (pid_for_children is ENOENT until then): the root is then a
  // copy of stasis (no exec), as CRIU's root is a fork of criu. Its exe is node's until
  // PR_SET_MM_MAP: a tree that maps node's binary itself would get EBUSY there.
  const noExec = !holder && (nsFlags & CLONE_NEWUSER) !== 0;
  if (holder) nsFlags = holder.flags & CLONE_NEWPID;
  // (--join-ns joins net, ipc and uts namespaces: the root joins them once born.)
  const inPidNs = (nsFlags & CLONE_NEWPID) !== 0;
  if (!inPidNs && !pidIsFree(pid)) throw new StasisError('E_PID_TAKEN', `Cannot restore pid ${pid}: another process has it`);
  if (!holder) return bornSibling(pid, nsFlags, join, timeOffsets, courier, noExec);
  // The user namespace's holder is made by a stub of stasis's own, as createRootTask's is.
  return withSeizedStub((_stub, inj) => {
    let root: NewTask | undefined;
    const made = holder;
    // A holder has no pid namespace (one comes only with the user namespace the root is born in).
    withUserNsHolder(inj, made, timeOffsets, (h) => {
      const joins = HOLDER_NS.filter(([flag]) => made.flags & flag).map(([flag, name]) => ({ file: `/proc/${h}/ns/${name}`, flag }));
      if (timeOffsets !== undefined) joins.push({ file: `/proc/${h}/ns/time_for_children`, flag: CLONE_NEWTIME });
      root = bornSibling(pid, 0, [...join, ...joins], undefined, courier);
    });
    return root!;
  });
}

/**
 * The root born from stasis's thread in new namespaces `nsFlags`, then seized; it joins `join`,
 * makes its time namespace, and in its pid namespace keeps stasis's pidfd (and the courier) at
 * the fds the tree's tasks expect them at.
 */
function bornSibling(pid: number, nsFlags: number, join: { file: string; flag: number }[], timeOffsets: string | undefined, courier: FdCourier | undefined, noExec = false): NewTask {
  const inPidNs = (nsFlags & CLONE_NEWPID) !== 0;
  const exe = stubMemfd();
  const devnull = fs.openSync('/dev/null', O_RDWR | O_CLOEXEC);
  let stasisPidfd = -1;
  let child = 0;
  try {
    const fds: [number, number][] = [[devnull, 0], [devnull, 1], [devnull, 2], [exe, 3]];
    if (inPidNs) {
      // Inside, stasis has no pid: its pidfd, inherited by every task the root makes.
      const r = syscallRaw('pidfd_open', process.pid, 0);
      if (r < 0n) throw new StasisError('E_RESTORE_FAILED', `Cannot open a pidfd of stasis: ${failedWith(r)}`);
      stasisPidfd = Number(r);
      fds.push([stasisPidfd, STASIS_PIDFD]);
      if (courier) fds.push([courier.theirs, COURIER_FD]);
    }
    const until = Date.now() + 3000;
    for (;;) {
      try {
        child = spawnSibling({ exe: STUB_EXE, argv: STUB_ARGV, env: [], nsFlags, pid, fds, noExec });
        break;
      } catch (e) {
        if (!(e instanceof SyscallError) || e.syscall !== 'clone3') throw new StasisError('E_RESTORE_FAILED', `Cannot start the root as a sibling of stasis: ${(e as Error).message}`, { cause: e });
        // EEXIST also while a dead task still holds the number, as in cloneWithPid.
        if (e.errno === EEXIST && !inPidNs && Date.now() < until && pidIsFree(pid)) continue;
        if (e.errno === EEXIST) throw new StasisError('E_PID_TAKEN', `Cannot restore pid ${pid}: another process has it`);
        if (e.errno === EINVAL && isPidNsInit()) {
          throw new StasisError('E_UNSUPPORTED', 'Cannot restore as a sibling (--restore-sibling): stasis is the init of its pid namespace, which CLONE_PARENT refuses');
        }
        throw new StasisError('E_RESTORE_FAILED', `Cannot create pid ${pid} as a sibling of stasis: ${e.message}`, { cause: e });
      }
    }
  } finally {
    fs.closeSync(exe);
    fs.closeSync(devnull);
    if (stasisPidfd >= 0) fs.closeSync(stasisPidfd);
  }
  try {
    seize(child, TRACE_OPTIONS);
    interrupt(child);
    const w = waitPid(child);
    if (!w || w.kind !== 'stopped' || w.event !== PTRACE_EVENT.STOP) throw new StasisError('E_RESTORE_FAILED', `New task ${child} did not stop`);
    // Its `syscall; int3`, left in place for the injectors of the restore and the clones that inherit it.
    const code = noExec ? spareCodeOfSibling() : getRegs(child).rip;
    const mem = new ProcMem(child, true);
    try {
      mem.write(code, SYSCALL_INT3);
    } finally {
      mem.close();
    }
    const root: NewTask = { pid: child, code, ...(inPidNs ? { stasisPidfd: STASIS_PIDFD } : {}), ...(inPidNs && courier ? { courier } : {}) };
    const inj = new Injector(child, { code, codeInPlace: true });
    try {
      // Close-on-exec, as the stub's dup3 makes them in createRootTask (they came through an exec here).
      for (const fd of inPidNs ? [STASIS_PIDFD, ...(courier ? [COURIER_FD] : [])] : []) inj.call('fcntl', fd, F_SETFD, FD_CLOEXEC);
      for (const j of join) joinNamespace(inj, j.file, j.flag);
    } finally {
      inj.end();
    }
    // Alone in its process: its time namespace, made (by unshare) and entered at once.
    if (timeOffsets !== undefined) enterOwnTimeNs(root, timeOffsets);
    return root;
  } catch (e) {
    // Killed; its parent, stasis's caller, reaps it once stasis has seen it die.
    kill(child, 9);
    try {
      waitPid(child);
    } catch {
      /* not traced yet: the caller gets it */
    }
    throw e;
  }
}

/** Whether stasis is the first process of its pid namespace (CLONE_PARENT is refused to it). */
function isPidNsInit(): boolean {
  const ns = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];
  return ns[ns.length - 1] === '1';
}
