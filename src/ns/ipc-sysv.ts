// The SysV IPC objects of an IPC namespace (CRIU's ipcns-shm, ipcns-sem and ipcns-msg
// images), read and made from within it on this thread (inNamespace): shared memory segments
// with their contents, semaphore sets with their values, message queues with every message
// in order with its type (peeked with MSG_COPY, not received). At restore each object gets
// its id back through the namespace's *_next_id sysctl, then its owner and mode. A segment's
// bytes follow its entry in ipcns-shm (stasis writes them so), or, where in_pagemaps is set
// (CRIU 4.2 always sets it), are in pagemap-shmem-<segment id>.img and its pages image.
import fs from 'node:fs';
import { create, toBinary } from '@bufbuild/protobuf';
import { addressOf, keepAlive, syscall, syscallRaw, vmRead, hugetlbfsPageSize, ProcMem, SyscallError } from '../sys/index.js';
import { imageExists, readImage, writeImage, type PayloadItem } from '../image/index.js';
import { ipcMsgAt } from '../image/ipc-msg-payload.js';
import {
  IpcDescEntrySchema, IpcShmEntrySchema, IpcSemEntrySchema, IpcMsgEntrySchema, IpcMsgSchema,
  type IpcDescEntry, type IpcShmEntry, type IpcSemEntry, type IpcMsgEntry,
} from '../image/gen/stasis/ipc-sysv_pb.js';
import { resolvePages, type TaskPages } from '../mem/page-chain.js';
import { readObjects, runsEnd } from '../mem/page-list.js';
import { hugePageOf } from '../mem/hugetlb.js';
import { StasisError } from '../errors.js';
import type { IdView, NsDumpCtx, NsRestoreCtx } from './ns-kind.js';

const IPC_CREAT = 0o1000, IPC_EXCL = 0o2000, IPC_NOWAIT = 0o4000, MSG_COPY = 0o40000;
const IPC_SET = 1, IPC_STAT = 2, GETALL = 13, SETALL = 17, SHM_LOCK = 11;
const SHM_RDONLY = 0o10000, SHM_DEST = 0o1000, SHM_LOCKED = 0o2000;
const ENOMSG = 42, ENOMEM = 12;
// shmget's SHM_HUGETLB; the page size goes in bits 26-31 as for MAP_HUGETLB (SHM_HUGE_SHIFT).
const SHM_HUGETLB = 0o4000, SHM_HUGE_SHIFT = 26, SHM_HUGE_MASK = 0x3f << SHM_HUGE_SHIFT;
/** The huge page size stasis makes segments of (as for MAP_HUGETLB areas: mem/collect-vmas.ts). */
const HUGE_2MB = 2 << 20;
// struct ipc64_perm: key, uid, gid, cuid, cgid, then mode (u16); the *id64_ds structures.
const PERM_UID = 4, PERM_GID = 8, PERM_MODE = 20;
const SHMID_DS = 112, SEMID_DS = 104, MSQID_DS = 120, MSG_QBYTES = 88;

const round = (n: number, to: number) => Math.ceil(n / to) * to;
const PAGE = 4096;
/** What stasis reads of a pages image at a time. */
const CHUNK = 1 << 20;

/** The rows of /proc/sysvipc/KIND (this thread's IPC namespace), by column name. */
function rows(kind: 'shm' | 'sem' | 'msg'): Record<string, string>[] {
  const [head = '', ...lines] = fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n');
  const cols = head.trim().split(/\s+/);
  return lines.filter((l) => l.trim()).map((l) => Object.fromEntries(l.trim().split(/\s+/).map((v, i) => [cols[i] ?? `c${i}`, v])));
}

function desc(r: Record<string, string>, idCol: string): IpcDescEntry {
  const n = (c: string) => Number(r[c] ?? 0);
  return create(IpcDescEntrySchema, {
    key: n('key') >>> 0, uid: n('uid'), gid: n('gid'), cuid: n('cuid'), cgid: n('cgid'), mode: parseInt(r.perms ?? '0', 8), id: n(idCol),
  });
}

/** A segment: its entry, its bytes that follow it, or (in_pagemaps) where its pages are. */
export type ShmItem = PayloadItem<IpcShmEntry> & { pages?: TaskPages };

/** Everything of this thread's IPC namespace's objects that the images keep. */
export interface SysvObjects {
  shm: ShmItem[];
  sem: PayloadItem<IpcSemEntry>[];
  msg: PayloadItem<IpcMsgEntry>[];
}

/** What of this thread's IPC namespace stasis cannot keep, or undefined. */
export function sysvRefusal(): string | undefined {
  for (const r of rows('shm')) {
    if (parseInt(r.perms ?? '0', 8) & SHM_DEST) return `shared memory segment ${r.shmid} is removed (IPC_RMID) but still attached; a restore could not make it again`;
  }
  return undefined;
}

export function readSysvObjects(): SysvObjects {
  const shm = rows('shm').map((r) => {
    const d = desc(r, 'shmid');
    const size = Number(r.size);
    const addr = syscall('shmat', d.id, 0, SHM_RDONLY);
    const data = Buffer.alloc(round(size, 4));
    let hugetlbFlag = 0;
    try {
      hugetlbFlag = hugetlbFlagOf(d.id, addr);
      // process_vm_readv reads hugetlb memory as any other (a hole reads as zeroes).
      if (size && vmRead(process.pid, addr, data, 0, size) !== size) throw new StasisError('E_DUMP_FAILED', `Cannot read SysV shared memory segment ${d.id}`);
    } finally {
      syscall('shmdt', addr);
    }
    return { entry: create(IpcShmEntrySchema, { desc: d, size: BigInt(size), inPagemaps: false, ...(hugetlbFlag ? { hugetlbFlag } : {}) }), payload: data };
  });
  const sem = rows('sem').map((r) => {
    const d = desc(r, 'semid');
    const nsems = Number(r.nsems);
    const vals = Buffer.alloc(round(nsems * 2, 8));
    syscall('semctl', d.id, 0, GETALL, addressOf(vals));
    keepAlive(vals);
    return { entry: create(IpcSemEntrySchema, { desc: d, nsems }), payload: vals };
  });
  const msgmax = Number(fs.readFileSync('/proc/sys/kernel/msgmax', 'utf8'));
  const msg = rows('msg').map((r) => {
    const d = desc(r, 'msqid');
    const ds = Buffer.alloc(MSQID_DS);
    syscall('msgctl', d.id, IPC_STAT, addressOf(ds));
    keepAlive(ds);
    const qnum = Number(r.qnum);
    const buf = Buffer.alloc(8 + msgmax);
    const parts: Buffer[] = [];
    for (let n = 0; n < qnum; n++) {
      const got = syscallRaw('msgrcv', d.id, addressOf(buf), msgmax, n, IPC_NOWAIT | MSG_COPY);
      keepAlive(buf);
      if (got === -BigInt(ENOMSG)) break;
      if (got < 0n) throw new SyscallError('msgrcv(MSG_COPY)', Number(-got), `message ${n} of queue ${d.id}`);
      const msize = Number(got);
      const head = toBinary(IpcMsgSchema, create(IpcMsgSchema, { mtype: buf.readBigUInt64LE(0), msize }));
      const size = Buffer.alloc(4);
      size.writeUInt32LE(head.length);
      const text = Buffer.alloc(round(msize, 8));
      buf.copy(text, 0, 8, 8 + msize);
      parts.push(size, Buffer.from(head), text);
    }
    if (parts.length / 3 !== qnum) throw new StasisError('E_DUMP_FAILED', `Message queue ${d.id} changed while it was read (${parts.length / 3} of ${qnum} messages)`);
    return { entry: create(IpcMsgEntrySchema, { desc: d, qbytes: Number(ds.readBigUInt64LE(MSG_QBYTES)), qnum }), payload: Buffer.concat(parts) };
  });
  return { shm, sem, msg };
}

/**
 * SHM_HUGETLB | SHM_HUGE_<size> for a segment made with SHM_HUGETLB, 0 for one of small pages
 * (CRIU's dump_shm_hugetlb_flag): known by the hugetlbfs file behind its mapping at `addr`.
 */
function hugetlbFlagOf(id: number, addr: bigint): number {
  const at = addr.toString(16);
  const m = new RegExp(`^${at}-([0-9a-f]+) `, 'm').exec(fs.readFileSync('/proc/self/maps', 'utf8'));
  if (!m) throw new StasisError('E_DUMP_FAILED', `Cannot find SysV shared memory segment ${id} attached at 0x${at} in stasis's maps`);
  const page = hugetlbfsPageSize(`/proc/self/map_files/${at}-${m[1]}`);
  if (!page) return 0;
  if (page !== HUGE_2MB) throw new StasisError('E_UNSUPPORTED', `SysV shared memory segment ${id} is made of ${page >> 10} kB huge pages, and stasis restores only 2048 kB ones`);
  return (SHM_HUGETLB | (Math.log2(page) << SHM_HUGE_SHIFT)) >>> 0;
}

/** A copy of `d` with its owners through `v`. */
function owners(d: IpcDescEntry | undefined, v: IdView | undefined, what: string): IpcDescEntry | undefined {
  if (!d || !v) return d;
  try {
    return { ...d, uid: v.uid(d.uid), gid: v.gid(d.gid), cuid: v.uid(d.cuid), cgid: v.gid(d.cgid) };
  } catch (err) {
    throw new StasisError('E_UNSUPPORTED', `SysV ${what} ${d.id}: ${(err as Error).message}`);
  }
}

function withOwners(o: SysvObjects, v: IdView | undefined): SysvObjects {
  if (!v) return o;
  return {
    shm: o.shm.map((i) => ({ ...i, entry: { ...i.entry, desc: owners(i.entry.desc, v, 'shared memory segment') } })),
    sem: o.sem.map((i) => ({ ...i, entry: { ...i.entry, desc: owners(i.entry.desc, v, 'semaphore set') } })),
    msg: o.msg.map((i) => ({ ...i, entry: { ...i.entry, desc: owners(i.entry.desc, v, 'message queue') } })),
  };
}

export function writeSysvObjects(ctx: NsDumpCtx, id: number, objects: SysvObjects): void {
  // The images hold owners as the namespace's tasks see them (CRIU's userns_uid()).
  const o = withOwners(objects, ctx.users);
  if (o.shm.length) ctx.note(writeImage(ctx.imagesDir, 'ipcns-shm', id, o.shm));
  if (o.sem.length) ctx.note(writeImage(ctx.imagesDir, 'ipcns-sem', id, o.sem));
  if (o.msg.length) ctx.note(writeImage(ctx.imagesDir, 'ipcns-msg', id, o.msg));
  ctx.log.info(`ipc namespace ${id}: ${o.shm.length} shared memory segment(s), ${o.sem.length} semaphore set(s), ${o.msg.length} message queue(s)`);
}

export function readSysvImages(ctx: NsRestoreCtx, id: number): SysvObjects {
  const read = <K extends 'ipcns-shm' | 'ipcns-sem' | 'ipcns-msg'>(k: K) => (imageExists(ctx.imagesDir, k, id) ? readImage(ctx.imagesDir, k, id) : []);
  // Every pagemap is read and checked here, before anything is made.
  const shm: ShmItem[] = read('ipcns-shm').map((i) => (i.entry.inPagemaps ? { ...i, pages: segmentPages(ctx.imagesDir, i.entry) } : i));
  return withOwners({ shm, sem: read('ipcns-sem') as SysvObjects['sem'], msg: read('ipcns-msg') as SysvObjects['msg'] }, ctx.users);
}

/**
 * The pages of a segment CRIU keeps in pagemap-shmem-<id>.img (vaddr: the offset in the
 * segment; pages it never had, holes, are in no entry), through the parent chain. They must
 * lie within the segment's pages: its size rounded up to its page size, which an attachment
 * maps whole (CRIU's own restore stops at the first entry past the size, silently).
 */
function segmentPages(dir: string, e: IpcShmEntry): TaskPages {
  const d = e.desc;
  if (!d) throw new StasisError('E_CORRUPT', 'A SysV shared memory segment of ipcns-shm has no desc');
  let pages: TaskPages;
  try {
    pages = resolvePages(dir, { kind: 'shmem-pagemap', id: d.id });
  } catch (err) {
    if (!(err instanceof StasisError)) throw err;
    throw new StasisError(err.code, `Cannot read the pages of SysV shared memory segment ${d.id} (in_pagemaps): ${err.message}`, { cause: err });
  }
  const page = hugePageOf(e.hugetlbFlag ?? 0, SHM_HUGETLB) || PAGE;
  const end = round(Number(e.size), page);
  const reach = runsEnd(pages.runs);
  if (reach > end) {
    throw new StasisError('E_CORRUPT', `pagemap-shmem-${d.id}.img has pages up to offset ${reach} of SysV shared memory segment ${d.id}, which has ${end} bytes of pages (size ${e.size})`);
  }
  return pages;
}

/** The next object of its kind this namespace makes gets `id` (the kernel forgets it once used). */
function nextId(kind: 'shm' | 'sem' | 'msg', id: number): void {
  fs.writeFileSync(`/proc/sys/kernel/${kind}_next_id`, String(id));
}

function made(kind: string, d: IpcDescEntry, r: bigint): number {
  if (Number(r) !== d.id) throw new StasisError('E_RESTORE_FAILED', `The restored SysV ${kind} with key 0x${d.key.toString(16)} got id ${r}, not ${d.id}`);
  return d.id;
}

/** IPC_STAT, then owner and mode (and more, by `edit`) with IPC_SET. */
function setPerm(call: 'shmctl' | 'semctl' | 'msgctl', id: number, size: number, d: IpcDescEntry, edit: (ds: Buffer) => void = () => {}): void {
  const ds = Buffer.alloc(size);
  const args = call === 'semctl' ? [id, 0] : [id];
  syscall(call, ...args, IPC_STAT, addressOf(ds));
  ds.writeUInt32LE(d.uid, PERM_UID);
  ds.writeUInt32LE(d.gid, PERM_GID);
  ds.writeUInt16LE(d.mode & 0o777, PERM_MODE);
  edit(ds);
  syscall(call, ...args, IPC_SET, addressOf(ds));
  keepAlive(ds);
}

/**
 * `make` (an xxxget that creates an object) run with this thread's effective ids set to the
 * object's creator's, which the kernel records as its cuid and cgid (no syscall sets them
 * later), then stasis's again. The raw syscalls change this thread's credentials alone (libc's
 * wrappers would change every thread's); the saved ids stay stasis's, so it can go back.
 */
function asCreator(d: IpcDescEntry, make: () => bigint): bigint {
  const uid = process.geteuid?.() ?? 0, gid = process.getegid?.() ?? 0;
  if (d.cuid === uid && d.cgid === gid) return make();
  syscall('setresgid', -1, d.cgid, -1);
  try {
    syscall('setresuid', -1, d.cuid, -1);
    try {
      return make();
    } finally {
      syscall('setresuid', -1, uid, -1);
    }
  } finally {
    syscall('setresgid', -1, gid, -1);
  }
}

/** Makes every object in this thread's (new) IPC namespace, at its id, created by its creator. */
export function makeSysvObjects(o: SysvObjects): void {
  for (const { entry, payload, pages } of o.shm) {
    const d = entry.desc!;
    const size = Number(entry.size);
    if (entry.inPagemaps && !pages) throw new StasisError('E_INTERNAL', `SysV shared memory segment ${d.id} keeps its pages in a pagemap image, which readSysvImages() did not read`);
    const huge = entry.hugetlbFlag ?? 0;
    if (huge & ~(SHM_HUGETLB | SHM_HUGE_MASK) || (huge && !(huge & SHM_HUGETLB))) {
      throw new StasisError('E_CORRUPT', `SysV shared memory segment ${d.id} has hugetlb_flag 0x${huge.toString(16)}, not SHM_HUGETLB and a page size`);
    }
    nextId('shm', d.id);
    const id = made('shared memory segment', d, asCreator(d, () => {
      const r = syscallRaw('shmget', d.key, size, (d.mode & 0o777) | IPC_CREAT | IPC_EXCL | huge);
      if (huge && r === -BigInt(ENOMEM)) throw new StasisError('E_RESTORE_FAILED', `Cannot make SysV shared memory segment ${d.id} of ${size} bytes with SHM_HUGETLB: too few free huge pages (see nr_hugepages)`);
      if (r < 0n) throw new SyscallError('shmget', Number(-r), `SysV shared memory segment ${d.id}`);
      return r;
    }));
    const addr = syscall('shmat', id, 0, 0);
    try {
      const mem = new ProcMem(process.pid, true);
      try {
        if (pages) writePages(mem, addr, d.id, pages);
        else writeNonZero(mem, addr, Buffer.from(payload.buffer, payload.byteOffset, Math.min(size, payload.byteLength)));
      } finally {
        mem.close();
      }
    } finally {
      syscall('shmdt', addr);
    }
    setPerm('shmctl', id, SHMID_DS, d);
    if (d.mode & SHM_LOCKED) syscall('shmctl', id, SHM_LOCK, 0);
  }
  for (const { entry, payload } of o.sem) {
    const d = entry.desc!;
    nextId('sem', d.id);
    const id = made('semaphore set', d, asCreator(d, () => syscall('semget', d.key, entry.nsems, (d.mode & 0o777) | IPC_CREAT | IPC_EXCL)));
    const vals = Buffer.from(payload);
    syscall('semctl', id, 0, SETALL, addressOf(vals));
    keepAlive(vals);
    setPerm('semctl', id, SEMID_DS, d);
  }
  for (const { entry, payload } of o.msg) {
    const d = entry.desc!;
    nextId('msg', d.id);
    const id = made('message queue', d, asCreator(d, () => syscall('msgget', d.key, (d.mode & 0o777) | IPC_CREAT | IPC_EXCL)));
    setPerm('msgctl', id, MSQID_DS, d, (ds) => ds.writeBigUInt64LE(BigInt(entry.qbytes), MSG_QBYTES));
    for (const m of messages(entry, payload)) {
      const buf = Buffer.alloc(8 + m.text.length);
      buf.writeBigUInt64LE(m.mtype, 0);
      m.text.copy(buf, 8);
      syscall('msgsnd', id, addressOf(buf), m.text.length, IPC_NOWAIT);
      keepAlive(buf);
    }
  }
}

/**
 * Writes the pages of `buf` that hold data at `addr` (+ their offset in `buf`): the others,
 * all zeroes, stay holes, using no memory, as they were.
 */
function writeNonZero(mem: ProcMem, addr: bigint, buf: Buffer): void {
  const zero = Buffer.alloc(PAGE);
  for (let off = 0; off < buf.length; ) {
    const len = (o: number) => Math.min(PAGE, buf.length - o);
    const isZero = (o: number) => buf.compare(zero, 0, len(o), o, o + len(o)) === 0;
    if (isZero(off)) {
      off += PAGE;
      continue;
    }
    let end = off + PAGE;
    while (end < buf.length && !isZero(end)) end += PAGE;
    end = Math.min(end, buf.length);
    mem.write(addr + BigInt(off), buf, off, end - off);
    off = end;
  }
}

/** Copies a segment's pages from the pages images `pages` names into it, attached at `addr`. */
function writePages(mem: ProcMem, addr: bigint, id: number, pages: TaskPages): void {
  const buf = Buffer.alloc(CHUNK);
  for (const src of pages.sources) {
    const fd = fs.openSync(src.path, 'r');
    try {
      for (const r of readObjects(src.reads)) {
        for (let done = 0; done < r.nrPages * PAGE; ) {
          const len = Math.min(CHUNK, r.nrPages * PAGE - done);
          const got = fs.readSync(fd, buf, 0, len, r.off + done);
          if (got !== len) throw new StasisError('E_TRUNCATED', `${src.path} ends at ${r.off + done + got}, inside the pages of SysV shared memory segment ${id}`);
          writeNonZero(mem, addr + r.vaddr + BigInt(done), buf.subarray(0, len));
          done += len;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** The messages of a queue's payload: size, IpcMsg, text rounded up to 8 bytes, qnum times. */
function messages(entry: IpcMsgEntry, payload: Uint8Array): { mtype: bigint; text: Buffer }[] {
  const out: { mtype: bigint; text: Buffer }[] = [];
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  for (let i = 0; i < entry.qnum; i++) {
    const { msg, next } = ipcMsgAt(b, at);
    out.push({ mtype: msg.mtype, text: Buffer.from(b.subarray(next, next + msg.msize)) });
    at = next + round(msg.msize, 8);
  }
  return out;
}
