// IPC namespaces (CRIU's ipcns-var-<id>.img): the namespace's sysctls under /proc/sys/kernel
// and /proc/sys/fs/mqueue, read and written from within it, and its SysV objects (shared
// memory, semaphores, message queues: ipc-sysv.ts), made again at their ids. A namespace
// holding POSIX message queues is refused.
import fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { inNamespace, openDetachedFs, CLONE_NEWIPC } from '../sys/index.js';
import { writeImage, readImage } from '../image/index.js';
import { IpcVarEntrySchema, type IpcVarEntry } from '../image/gen/stasis/ipc-var_pb.js';
import { StasisError } from '../errors.js';
import type { IdView, NsKind } from './ns-kind.js';
import { readSysvObjects, writeSysvObjects, readSysvImages, makeSysvObjects, sysvRefusal } from './ipc-sysv.js';

/** Each scalar field and its file; sem_ctls is /proc/sys/kernel/sem (four numbers). */
const FILES = [
  ['msgCtlmax', 'kernel/msgmax'], ['msgCtlmnb', 'kernel/msgmnb'], ['msgCtlmni', 'kernel/msgmni'],
  ['autoMsgmni', 'kernel/auto_msgmni'], ['shmCtlmax', 'kernel/shmmax'], ['shmCtlall', 'kernel/shmall'],
  ['shmCtlmni', 'kernel/shmmni'], ['shmRmidForced', 'kernel/shm_rmid_forced'], ['mqQueuesMax', 'fs/mqueue/queues_max'],
  ['mqMsgMax', 'fs/mqueue/msg_max'], ['mqMsgsizeMax', 'fs/mqueue/msgsize_max'], ['mqMsgDefault', 'fs/mqueue/msg_default'],
  ['mqMsgsizeDefault', 'fs/mqueue/msgsize_default'],
] as const;
const WIDE = new Set(['shmCtlmax', 'shmCtlall']);

function readSysctl(file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${file}`, 'utf8').trim();
  } catch {
    return undefined; // auto_msgmni is gone since Linux 4.1: CRIU writes 0 for it
  }
}

/** The sysctls of this thread's IPC namespace. */
function readVars(): IpcVarEntry {
  const e = create(IpcVarEntrySchema, { semCtls: (readSysctl('kernel/sem') ?? '').split(/\s+/).filter(Boolean).map(Number) });
  const rec = e as unknown as Record<string, number | bigint>;
  for (const [field, file] of FILES) {
    const v = readSysctl(file) ?? '0';
    rec[field] = WIDE.has(field) ? BigInt(v) : Number(v);
  }
  return e;
}

/** The rows of /proc/sysvipc/KIND of this thread's IPC namespace. */
function sysvRows(kind: 'shm' | 'sem' | 'msg'): string[][] {
  return fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
}

/**
 * How a tree in stasis's own IPC namespace uses the host's SysV objects, which are not the
 * tree's to restore: a segment attached (/SYSV in its maps), or a segment or queue a task
 * of the tree created or last used (their pids in /proc/sysvipc). Semaphores record no pid.
 */
export function hostSysvUse(pids: number[]): string | undefined {
  for (const p of pids) {
    let maps = '';
    try {
      maps = fs.readFileSync(`/proc/${p}/maps`, 'utf8');
    } catch {
      continue; // a zombie
    }
    const m = /^([0-9a-f]+)-\S+ \S+ \S+ \S+ (\d+)\s+\/SYSV([0-9a-f]+)/m.exec(maps);
    if (m) return `pid ${p} has SysV shared memory segment ${m[2]} (key 0x${m[3]}) of the host's IPC namespace attached at 0x${m[1]}`;
  }
  const tree = new Set(pids.map(String));
  for (const r of sysvRows('shm')) {
    // key shmid perms size cpid lpid ...
    if (tree.has(r[4] ?? '') || tree.has(r[5] ?? '')) return `SysV shared memory segment ${r[1]} (key ${r[0]}) of the host's IPC namespace was made or last used by pid ${tree.has(r[4] ?? '') ? r[4] : r[5]}`;
  }
  for (const r of sysvRows('msg')) {
    // key msqid perms cbytes qnum lspid lrpid ...
    if (tree.has(r[5] ?? '') || tree.has(r[6] ?? '')) return `SysV message queue ${r[1]} (key ${r[0]}) of the host's IPC namespace was last used by pid ${tree.has(r[5] ?? '') ? r[5] : r[6]}`;
  }
  return undefined;
}

/**
 * The POSIX message queues of the IPC namespace of `pid`: they live in its mqueue filesystem,
 * which only a mount made from inside shows: a detached one (fsopen(2) takes the namespace of
 * the calling thread), so nothing of the machine's changes; or, where the kernel has no
 * fsopen, a mount in a private mount namespace of a helper's. Undefined when neither works.
 */
function mqueues(pid: number): string[] | undefined {
  try {
    return inNamespace(`/proc/${pid}/ns/ipc`, 'ipc', CLONE_NEWIPC, () => {
      const fd = openDetachedFs('mqueue');
      try {
        return fs.readdirSync(`/proc/self/fd/${fd}`);
      } finally {
        fs.closeSync(fd);
      }
    });
  } catch {
    // (About 30 ms of nsenter, unshare, sh, mount and ls.)
    const script = 'd=$(mktemp -d) || exit 9; mount -t mqueue mqueue "$d" || { rmdir "$d"; exit 9; }; ls -A "$d"; s=$?; umount "$d"; rmdir "$d"; exit $s';
    const r = spawnSync('nsenter', [`--ipc=/proc/${pid}/ns/ipc`, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script], {
      env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` }, encoding: 'utf8',
    });
    return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : undefined;
  }
}

const NEXT_IDS = [['shmNextId', 'legacyShmNextId', 'shm'], ['semNextId', 'legacySemNextId', 'sem'], ['msgNextId', 'legacyMsgNextId', 'msg']] as const;

/** kernel/*_next_id, where one is set (-1: none, not written, as CRIU does). */
function readNextIds(): Partial<IpcVarEntry> {
  const out: Partial<Record<(typeof NEXT_IDS)[number][0], number>> = {};
  for (const [field, , kind] of NEXT_IDS) {
    const v = Number(readSysctl(`kernel/${kind}_next_id`) ?? -1);
    if (v >= 0) out[field] = v;
  }
  return out;
}

/** After the objects are made (each used its own id): the next ids the namespace had (from stasis's own fields in its images of format 10 and before). */
function writeNextIds(e: IpcVarEntry): void {
  for (const [field, legacy, kind] of NEXT_IDS) {
    const v = isFieldSet(e, IpcVarEntrySchema.field[field]) ? e[field] : isFieldSet(e, IpcVarEntrySchema.field[legacy]) ? e[legacy] : -1;
    // (-1, none, cannot be written: the kernel resets it once an object took the id.)
    if (v >= 0 && v <= 0x7fffffff) fs.writeFileSync(`/proc/sys/kernel/${kind}_next_id`, String(v));
  }
}

/** stasis's uid and gid of uid 0 of the tree's user namespace, when it has one that maps 0 elsewhere. */
function rootOf(users: IdView | undefined): { uid: number; gid: number } | undefined {
  if (!users) return undefined;
  try {
    const uid = users.uid(0), gid = users.gid(0);
    return uid === (process.geteuid?.() ?? 0) && gid === (process.getegid?.() ?? 0) ? undefined : { uid, gid };
  } catch {
    return undefined; // no uid 0 there: nobody has the namespace's root's rights
  }
}

export const ipcNs = {
  name: 'ipc',
  flag: CLONE_NEWIPC,
  check: (pid) => {
    const mq = mqueues(pid);
    if (!mq) return 'stasis cannot look at its POSIX message queues (nsenter, unshare and mount of an mqueue filesystem failed)';
    if (mq.length) return `it holds POSIX message queue(s) ${mq.slice(0, 3).map((q) => `/${q}`).join(', ')}; stasis cannot dump message queues yet`;
    return inNamespace(`/proc/${pid}/ns/ipc`, 'ipc', CLONE_NEWIPC, sysvRefusal);
  },
  hostCheck: hostSysvUse,
  dump: (ctx, pid, id) => {
    const [e, objs] = inNamespace(`/proc/${pid}/ns/ipc`, 'ipc', CLONE_NEWIPC, () => [Object.assign(readVars(), readNextIds()), readSysvObjects()] as const);
    ctx.note(writeImage(ctx.imagesDir, 'ipcns-var', id, [e]));
    writeSysvObjects(ctx, id, objs);
  },
  restore: (ctx, hostPid, id) => {
    const want = readImage(ctx.imagesDir, 'ipcns-var', id)[0];
    if (!want) throw new StasisError('E_CORRUPT', `ipcns-var-${id}.img is empty`);
    const objs = readSysvImages(ctx, id);
    inNamespace(`/proc/${hostPid}/ns/ipc`, 'ipc', CLONE_NEWIPC, () => {
      const now = readVars();
      const wanted = want as unknown as Record<string, number | bigint>, fresh = now as unknown as Record<string, number | bigint>;
      const writes: [string, string][] = [];
      if (want.semCtls.length && want.semCtls.join(' ') !== now.semCtls.join(' ')) writes.push(['kernel/sem', want.semCtls.join(' ')]);
      for (const [field, file] of FILES) {
        // auto_msgmni no longer exists; the defaults are absent from old images.
        if (field === 'autoMsgmni' || wanted[field] === undefined || String(wanted[field]) === String(fresh[field])) continue;
        writes.push([file, String(wanted[field])]);
      }
      // In a namespace a user namespace owns, only that namespace's uid 0 may write them
      // (ipc_permissions(): no capability overrides it): a child of that uid writes them.
      const owner = rootOf(ctx.users);
      for (const [file, value] of writes) {
        ctx.log.debug(`ipc namespace ${id}: ${file} = ${value}`);
        try {
          if (owner) execFileSync('sh', ['-c', 'printf %s "$1" > "$2"', 'sh', value, `/proc/sys/${file}`], { ...owner, stdio: ['ignore', 'ignore', 'pipe'] });
          else fs.writeFileSync(`/proc/sys/${file}`, value);
        } catch (e) {
          throw new StasisError('E_RESTORE_FAILED', `Cannot set ${file} to ${value} in the restored IPC namespace: ${(e as Error).message}${(e as NodeJS.ErrnoException).code === 'EROFS' ? ' (/proc/sys is mounted read-only here)' : ''}`);
        }
      }
      // After the sysctls: a queue's default size is msgmnb's.
      makeSysvObjects(objs);
      writeNextIds(want);
    });
  },
} satisfies NsKind;
