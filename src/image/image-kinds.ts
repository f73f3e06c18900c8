// The registry of image kinds: file name, magic words, messages and layout of each.
// Names and magics follow criu/image-desc.c and crit; changing them changes the format.
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { MAGIC, type HeadMagic } from './magic.js';
import { normalisePagemapEntry, normaliseFileEntry, normaliseTtyInfoEntry } from './compat.js';
import { InventoryEntrySchema } from './gen/stasis/inventory_pb.js';
import { PstreeEntrySchema } from './gen/stasis/pstree_pb.js';
import { CoreEntrySchema, TaskKobjIdsEntrySchema } from './gen/stasis/core_pb.js';
import { MmEntrySchema } from './gen/stasis/mm_pb.js';
import { VmaEntrySchema } from './gen/stasis/vma_pb.js';
import { PagemapHeadSchema, PagemapEntrySchema } from './gen/stasis/pagemap_pb.js';
import { FileEntrySchema, FdinfoEntrySchema } from './gen/stasis/fdinfo_pb.js';
import { RegFileEntrySchema } from './gen/stasis/regfile_pb.js';
import { PipeEntrySchema } from './gen/stasis/pipe_pb.js';
import { PipeDataEntrySchema, type PipeDataEntry } from './gen/stasis/pipe-data_pb.js';
import { FifoEntrySchema } from './gen/stasis/fifo_pb.js';
import { SkPacketEntrySchema, type SkPacketEntry } from './gen/stasis/sk-packet_pb.js';
import { FsEntrySchema } from './gen/stasis/fs_pb.js';
import {
  GhostFileEntrySchema,
  GhostChunkEntrySchema,
  type GhostFileEntry,
  type GhostChunkEntry,
} from './gen/stasis/ghost-file_pb.js';
import { FileLockEntrySchema } from './gen/stasis/file-lock_pb.js';
import { CgroupEntrySchema } from './gen/stasis/cgroup_pb.js';
import { SeccompEntrySchema } from './gen/stasis/seccomp_pb.js';
import { RemapFilePathEntrySchema } from './gen/stasis/remap-file-path_pb.js';
import { StatsEntrySchema } from './gen/stasis/stats_pb.js';
import { TtyFileEntrySchema, TtyInfoEntrySchema, TtyDataEntrySchema } from './gen/stasis/tty_pb.js';
import { MemfdInodeEntrySchema } from './gen/stasis/memfd_pb.js';
import { SaEntrySchema } from './gen/stasis/sa_pb.js';
import { CredsEntrySchema } from './gen/stasis/creds_pb.js';
import { RlimitEntrySchema } from './gen/stasis/rlimit_pb.js';
import { ItimerEntrySchema, PosixTimerEntrySchema } from './gen/stasis/timer_pb.js';
import { SiginfoEntrySchema } from './gen/stasis/siginfo_pb.js';
import { IpcShmEntrySchema, IpcSemEntrySchema, IpcMsgEntrySchema, type IpcShmEntry, type IpcSemEntry } from './gen/stasis/ipc-sysv_pb.js';
import { ipcMsgPayloadSize } from './ipc-msg-payload.js';
import { TcpStreamEntrySchema, type TcpStreamEntry } from './gen/stasis/tcp-stream_pb.js';
import { UtsnsEntrySchema } from './gen/stasis/utsns_pb.js';
import { UsernsEntrySchema } from './gen/stasis/userns_pb.js';
import { MntEntrySchema } from './gen/stasis/mnt_pb.js';
import { TimensEntrySchema } from './gen/stasis/timens_pb.js';
import { IpcVarEntrySchema } from './gen/stasis/ipc-var_pb.js';
import { NetDeviceEntrySchema, NetnsEntrySchema } from './gen/stasis/netdev_pb.js';

/**
 * How the entries of an image are laid out after its magic:
 * - `entries`: a list of one message type;
 * - `head`: one head message, then a list of entries (pagemap);
 * - `payload`: every entry is followed by raw bytes whose length the entry gives (pipe data);
 * - `ghost`: a GhostFileEntry, then the file's contents, raw or as chunk + data pairs;
 * - `raw`: no magic and no entries (pages-N.img).
 */
export type Layout = 'entries' | 'head' | 'payload' | 'ghost' | 'raw';

interface KindBase {
  /** The file name pattern, for messages and documentation. */
  pattern: string;
  /** Recognises the kind's file names, for `readImageFile()`. */
  match: RegExp;
  /** False for kinds crit 3.17 has no handler for. */
  critDecodes: boolean;
}

interface FramedBase extends KindBase {
  magic: number;
  head: HeadMagic;
}

export interface EntriesKind<D extends DescMessage = DescMessage> extends FramedBase {
  layout: 'entries';
  schema: D;
  compat?: (entry: MessageShape<D>) => void;
}

export interface HeadKind<H extends DescMessage = DescMessage, D extends DescMessage = DescMessage>
  extends FramedBase {
  layout: 'head';
  headSchema: H;
  schema: D;
  compat?: (entry: MessageShape<D>) => void;
}

export interface PayloadKind<D extends DescMessage = DescMessage> extends FramedBase {
  layout: 'payload';
  schema: D;
  /** Length of the raw bytes that follow an entry (for a SysV queue, found by reading them: `following`). */
  payloadSize: (entry: MessageShape<D>, following?: Uint8Array) => number;
}

export interface GhostKind extends FramedBase {
  layout: 'ghost';
  headSchema: typeof GhostFileEntrySchema;
  schema: typeof GhostChunkEntrySchema;
}

export interface RawKind extends KindBase {
  layout: 'raw';
}

/** Builds a name: the argument is a pid or an object id (%u in CRIU's patterns). */
const numbered = (prefix: string, radix = 10) => (id: number) => `${prefix}-${id.toString(radix)}.img`;

const common = { head: 'common', critDecodes: true } as const;

export const IMAGE_KINDS = {
  inventory: {
    layout: 'entries', schema: InventoryEntrySchema, magic: MAGIC.INVENTORY, head: 'none', critDecodes: true,
    pattern: 'inventory.img', match: /^inventory\.img$/, fileName: () => 'inventory.img',
  },
  pstree: {
    layout: 'entries', schema: PstreeEntrySchema, magic: MAGIC.PSTREE, ...common,
    pattern: 'pstree.img', match: /^pstree\.img$/, fileName: () => 'pstree.img',
  },
  core: {
    layout: 'entries', schema: CoreEntrySchema, magic: MAGIC.CORE, ...common,
    pattern: 'core-<tid>.img', match: /^core-\d+\.img$/, fileName: numbered('core'),
  },
  ids: {
    layout: 'entries', schema: TaskKobjIdsEntrySchema, magic: MAGIC.IDS, ...common,
    pattern: 'ids-<pid>.img', match: /^ids-\d+\.img$/, fileName: numbered('ids'),
  },
  mm: {
    layout: 'entries', schema: MmEntrySchema, magic: MAGIC.MM, ...common,
    pattern: 'mm-<pid>.img', match: /^mm-\d+\.img$/, fileName: numbered('mm'),
  },
  vmas: {
    layout: 'entries', schema: VmaEntrySchema, magic: MAGIC.VMAS, ...common,
    pattern: 'vmas-<pid>.img', match: /^vmas-\d+\.img$/, fileName: numbered('vmas'),
  },
  pagemap: {
    layout: 'head', headSchema: PagemapHeadSchema, schema: PagemapEntrySchema, magic: MAGIC.PAGEMAP, ...common,
    compat: normalisePagemapEntry,
    pattern: 'pagemap-<pid>.img', match: /^pagemap-\d+\.img$/, fileName: numbered('pagemap'),
  },
  'shmem-pagemap': {
    layout: 'head', headSchema: PagemapHeadSchema, schema: PagemapEntrySchema, magic: MAGIC.PAGEMAP, ...common,
    compat: normalisePagemapEntry,
    pattern: 'pagemap-shmem-<shmid>.img', match: /^pagemap-shmem-\d+\.img$/, fileName: numbered('pagemap-shmem'),
  },
  pages: {
    layout: 'raw', critDecodes: false,
    pattern: 'pages-<id>.img', match: /^pages-\d+\.img$/, fileName: numbered('pages'),
  },
  // A network namespace's netfilter rules as the tools print them (ns/netfilter.ts).
  iptables: {
    layout: 'raw', critDecodes: false,
    pattern: 'iptables-<ns id>.img', match: /^iptables-\d+\.img$/, fileName: numbered('iptables'),
  },
  ip6tables: {
    layout: 'raw', critDecodes: false,
    pattern: 'ip6tables-<ns id>.img', match: /^ip6tables-\d+\.img$/, fileName: numbered('ip6tables'),
  },
  nftables: {
    layout: 'raw', critDecodes: false,
    pattern: 'nftables-<ns id>.img', match: /^nftables-\d+\.img$/, fileName: numbered('nftables'),
  },
  // CRIU's `ip addr save`, `ip route save`, `ip -6 route save` and `ip rule save` of the namespace (ns/net.ts checks them).
  ifaddr: {
    layout: 'raw', critDecodes: false,
    pattern: 'ifaddr-<ns id>.img', match: /^ifaddr-\d+\.img$/, fileName: numbered('ifaddr'),
  },
  route: {
    layout: 'raw', critDecodes: false,
    pattern: 'route-<ns id>.img', match: /^route-\d+\.img$/, fileName: numbered('route'),
  },
  route6: {
    layout: 'raw', critDecodes: false,
    pattern: 'route6-<ns id>.img', match: /^route6-\d+\.img$/, fileName: numbered('route6'),
  },
  rule: {
    layout: 'raw', critDecodes: false,
    pattern: 'rule-<ns id>.img', match: /^rule-\d+\.img$/, fileName: numbered('rule'),
  },
  // Its conntrack entries and expectations, as ctnetlink messages end to end (ns/net-conntrack.ts).
  'netns-ct': {
    layout: 'raw', critDecodes: false,
    pattern: 'netns-ct-<ns id>.img', match: /^netns-ct-\d+\.img$/, fileName: numbered('netns-ct'),
  },
  'netns-exp': {
    layout: 'raw', critDecodes: false,
    pattern: 'netns-exp-<ns id>.img', match: /^netns-exp-\d+\.img$/, fileName: numbered('netns-exp'),
  },
  files: {
    layout: 'entries', schema: FileEntrySchema, magic: MAGIC.FILES, ...common,
    compat: normaliseFileEntry,
    pattern: 'files.img', match: /^files\.img$/, fileName: () => 'files.img',
  },
  fdinfo: {
    layout: 'entries', schema: FdinfoEntrySchema, magic: MAGIC.FDINFO, ...common,
    pattern: 'fdinfo-<files_id>.img', match: /^fdinfo-\d+\.img$/, fileName: numbered('fdinfo'),
  },
  'reg-files': {
    layout: 'entries', schema: RegFileEntrySchema, magic: MAGIC.REG_FILES, ...common,
    pattern: 'reg-files.img', match: /^reg-files\.img$/, fileName: () => 'reg-files.img',
  },
  pipes: {
    layout: 'entries', schema: PipeEntrySchema, magic: MAGIC.PIPES, ...common,
    pattern: 'pipes.img', match: /^pipes\.img$/, fileName: () => 'pipes.img',
  },
  'pipes-data': {
    layout: 'payload', schema: PipeDataEntrySchema, magic: MAGIC.PIPES_DATA, ...common,
    payloadSize: (e: PipeDataEntry) => e.bytes,
    pattern: 'pipes-data.img', match: /^pipes-data\.img$/, fileName: () => 'pipes-data.img',
  },
  fifo: {
    layout: 'entries', schema: FifoEntrySchema, magic: MAGIC.FIFO, ...common,
    pattern: 'fifo.img', match: /^fifo\.img$/, fileName: () => 'fifo.img',
  },
  'fifo-data': {
    layout: 'payload', schema: PipeDataEntrySchema, magic: MAGIC.FIFO_DATA, ...common,
    payloadSize: (e: PipeDataEntry) => e.bytes,
    pattern: 'fifo-data.img', match: /^fifo-data\.img$/, fileName: () => 'fifo-data.img',
  },
  'sk-queues': {
    layout: 'payload', schema: SkPacketEntrySchema, magic: MAGIC.SK_QUEUES, ...common,
    payloadSize: (e: SkPacketEntry) => e.length,
    pattern: 'sk-queues.img', match: /^sk-queues\.img$/, fileName: () => 'sk-queues.img',
  },
  // One TCP connection, named by its socket's inode in hex (CRIU's "tcp-stream-%x"): the
  // entry, then its receive queue and its send queue.
  'tcp-stream': {
    layout: 'payload', schema: TcpStreamEntrySchema, magic: MAGIC.TCP_STREAM, ...common,
    payloadSize: (e: TcpStreamEntry) => e.inqLen + e.outqLen,
    pattern: 'tcp-stream-<hex inode>.img', match: /^tcp-stream-[0-9a-f]+\.img$/, fileName: numbered('tcp-stream', 16),
  },
  fs: {
    layout: 'entries', schema: FsEntrySchema, magic: MAGIC.FS, ...common,
    pattern: 'fs-<pid>.img', match: /^fs-\d+\.img$/, fileName: numbered('fs'),
  },
  'ghost-file': {
    layout: 'ghost', headSchema: GhostFileEntrySchema, schema: GhostChunkEntrySchema, magic: MAGIC.GHOST_FILE,
    ...common,
    // The id is printed in hex (CRIU's "ghost-file-%x").
    pattern: 'ghost-file-<hex id>.img', match: /^ghost-file-[0-9a-f]+\.img$/, fileName: numbered('ghost-file', 16),
  },
  'remap-fpath': {
    layout: 'entries', schema: RemapFilePathEntrySchema, magic: MAGIC.REMAP_FPATH, ...common,
    pattern: 'remap-fpath.img', match: /^remap-fpath\.img$/, fileName: () => 'remap-fpath.img',
  },
  cgroup: {
    layout: 'entries', schema: CgroupEntrySchema, magic: MAGIC.CGROUP, ...common,
    pattern: 'cgroup.img', match: /^cgroup\.img$/, fileName: () => 'cgroup.img',
  },
  'file-locks': {
    layout: 'entries', schema: FileLockEntrySchema, magic: MAGIC.FILE_LOCKS, ...common,
    pattern: 'filelocks.img', match: /^filelocks\.img$/, fileName: () => 'filelocks.img',
  },
  seccomp: {
    layout: 'entries', schema: SeccompEntrySchema, magic: MAGIC.SECCOMP, ...common,
    pattern: 'seccomp.img', match: /^seccomp\.img$/, fileName: () => 'seccomp.img',
  },
  stats: {
    layout: 'entries', schema: StatsEntrySchema, magic: MAGIC.STATS, head: 'service', critDecodes: true,
    pattern: 'stats-<dump|restore>.img', match: /^stats-(dump|restore)\.img$/,
    fileName: (phase: 'dump' | 'restore') => `stats-${phase}.img`,
  },
  'tty-files': {
    layout: 'entries', schema: TtyFileEntrySchema, magic: MAGIC.TTY_FILES, ...common,
    pattern: 'tty.img', match: /^tty\.img$/, fileName: () => 'tty.img',
  },
  'tty-info': {
    layout: 'entries', schema: TtyInfoEntrySchema, magic: MAGIC.TTY_INFO, ...common,
    compat: normaliseTtyInfoEntry,
    pattern: 'tty-info.img', match: /^tty-info\.img$/, fileName: () => 'tty-info.img',
  },
  'tty-data': {
    layout: 'entries', schema: TtyDataEntrySchema, magic: MAGIC.TTY_DATA, ...common,
    pattern: 'tty-data.img', match: /^tty-data\.img$/, fileName: () => 'tty-data.img',
  },
  'memfd-inode': {
    layout: 'entries', schema: MemfdInodeEntrySchema, magic: MAGIC.MEMFD_INODE, ...common,
    pattern: 'memfd.img', match: /^memfd\.img$/, fileName: () => 'memfd.img',
  },
  // Namespaces, named by their ns id (the ids of ids-<pid>.img).
  utsns: {
    layout: 'entries', schema: UtsnsEntrySchema, magic: MAGIC.UTSNS, ...common,
    pattern: 'utsns-<ns id>.img', match: /^utsns-\d+\.img$/, fileName: numbered('utsns'),
  },
  userns: {
    layout: 'entries', schema: UsernsEntrySchema, magic: MAGIC.USERNS, ...common,
    pattern: 'userns-<ns id>.img', match: /^userns-\d+\.img$/, fileName: numbered('userns'),
  },
  mountpoints: {
    layout: 'entries', schema: MntEntrySchema, magic: MAGIC.MNTS, ...common,
    pattern: 'mountpoints-<ns id>.img', match: /^mountpoints-\d+\.img$/, fileName: numbered('mountpoints'),
  },
  // A tmpfs's files, as CRIU keeps them: a gzip'd tar archive named by the mount's root_dev.
  'tmpfs-dev': {
    layout: 'raw', critDecodes: false,
    pattern: 'tmpfs-dev-<root dev>.tar.gz.img', match: /^tmpfs-dev-\d+\.tar\.gz\.img$/, fileName: (dev: number) => `tmpfs-dev-${dev}.tar.gz.img`,
  },
  'ipcns-var': {
    layout: 'entries', schema: IpcVarEntrySchema, magic: MAGIC.IPC_VAR, ...common,
    pattern: 'ipcns-var-<ns id>.img', match: /^ipcns-var-\d+\.img$/, fileName: numbered('ipcns-var'),
  },
  // SysV objects of an IPC namespace: each entry, then a segment's contents (rounded up to 4
  // bytes), a set's u16 values (rounded up to 8), a queue's messages (ipc-msg-payload.ts).
  'ipcns-shm': {
    layout: 'payload', schema: IpcShmEntrySchema, magic: MAGIC.IPCNS_SHM, ...common,
    payloadSize: (e: IpcShmEntry) => (e.inPagemaps ? 0 : Math.ceil(Number(e.size) / 4) * 4),
    pattern: 'ipcns-shm-<ns id>.img', match: /^ipcns-shm-\d+\.img$/, fileName: numbered('ipcns-shm'),
  },
  'ipcns-sem': {
    layout: 'payload', schema: IpcSemEntrySchema, magic: MAGIC.IPCNS_SEM, ...common,
    payloadSize: (e: IpcSemEntry) => Math.ceil((e.nsems * 2) / 8) * 8,
    pattern: 'ipcns-sem-<ns id>.img', match: /^ipcns-sem-\d+\.img$/, fileName: numbered('ipcns-sem'),
  },
  'ipcns-msg': {
    layout: 'payload', schema: IpcMsgEntrySchema, magic: MAGIC.IPCNS_MSG, ...common,
    payloadSize: ipcMsgPayloadSize,
    pattern: 'ipcns-msg-<ns id>.img', match: /^ipcns-msg-\d+\.img$/, fileName: numbered('ipcns-msg'),
  },
  netdev: {
    layout: 'entries', schema: NetDeviceEntrySchema, magic: MAGIC.NETDEV, ...common,
    pattern: 'netdev-<ns id>.img', match: /^netdev-\d+\.img$/, fileName: numbered('netdev'),
  },
  timens: {
    layout: 'entries', schema: TimensEntrySchema, magic: MAGIC.TIMENS, ...common,
    pattern: 'timens-<ns id>.img', match: /^timens-\d+\.img$/, fileName: numbered('timens'),
  },
  netns: {
    layout: 'entries', schema: NetnsEntrySchema, magic: MAGIC.NETNS, ...common,
    pattern: 'netns-<ns id>.img', match: /^netns-\d+\.img$/, fileName: numbered('netns'),
  },
  // Per-task images of older CRIU versions, whose contents now live in core-<tid>.img.
  // Registered so that old image sets can be read.
  sigacts: {
    layout: 'entries', schema: SaEntrySchema, magic: MAGIC.SIGACT, ...common,
    pattern: 'sigacts-<pid>.img', match: /^sigacts-\d+\.img$/, fileName: numbered('sigacts'),
  },
  creds: {
    layout: 'entries', schema: CredsEntrySchema, magic: MAGIC.CREDS, ...common,
    pattern: 'creds-<pid>.img', match: /^creds-\d+\.img$/, fileName: numbered('creds'),
  },
  rlimit: {
    layout: 'entries', schema: RlimitEntrySchema, magic: MAGIC.RLIMIT, ...common,
    pattern: 'rlimit-<pid>.img', match: /^rlimit-\d+\.img$/, fileName: numbered('rlimit'),
  },
  itimers: {
    layout: 'entries', schema: ItimerEntrySchema, magic: MAGIC.ITIMERS, ...common,
    pattern: 'itimers-<pid>.img', match: /^itimers-\d+\.img$/, fileName: numbered('itimers'),
  },
  'posix-timers': {
    layout: 'entries', schema: PosixTimerEntrySchema, magic: MAGIC.POSIX_TIMERS, ...common,
    pattern: 'posix-timers-<pid>.img', match: /^posix-timers-\d+\.img$/, fileName: numbered('posix-timers'),
  },
  // crit 3.17 knows the SIGNAL magic but has no handler for it.
  'signal-shared': {
    layout: 'entries', schema: SiginfoEntrySchema, magic: MAGIC.SIGNAL, head: 'common', critDecodes: false,
    pattern: 'signal-s-<pid>.img', match: /^signal-s-\d+\.img$/, fileName: numbered('signal-s'),
  },
  'signal-private': {
    layout: 'entries', schema: SiginfoEntrySchema, magic: MAGIC.SIGNAL, head: 'common', critDecodes: false,
    pattern: 'signal-p-<tid>.img', match: /^signal-p-\d+\.img$/, fileName: numbered('signal-p'),
  },
} as const satisfies Record<string, AnyKindDef>;

// The registry's constraint: callbacks take `never` so that each kind's may take its own message type.
type Loosen<T> = T extends unknown
  ? Omit<T, 'compat' | 'payloadSize'> & { compat?: (entry: never) => void; payloadSize?: (entry: never, following?: Uint8Array) => number }
  : never;
type AnyKindDef = Loosen<EntriesKind | HeadKind | PayloadKind | GhostKind | RawKind> & {
  fileName: (arg: never) => string;
};

export type ImageKindName = keyof typeof IMAGE_KINDS;
export type KindDef<K extends ImageKindName> = (typeof IMAGE_KINDS)[K];

/** What names a file of kind K: a pid or id, 'dump' | 'restore' for stats, undefined for single images. */
export type NameArg<K extends ImageKindName> = Parameters<KindDef<K>['fileName']>[0];

/** An entry followed by its raw data (pipe and FIFO contents, ghost file chunks). */
export interface PayloadItem<M> {
  entry: M;
  payload: Uint8Array;
}

export interface HeadImage<H, M> {
  head: H;
  entries: M[];
}

/** A ghost file: `chunks` when head.chunks is set, else the whole `contents`. */
export interface GhostFileImage {
  head: GhostFileEntry;
  chunks: PayloadItem<GhostChunkEntry>[];
  contents?: Uint8Array;
}

/** The whole decoded contents of an image of kind K: what `readImage()` returns and `writeImage()` takes. */
export type ImageContent<K extends ImageKindName> =
  KindDef<K> extends { layout: 'entries'; schema: infer D extends DescMessage } ? MessageShape<D>[]
  : KindDef<K> extends { layout: 'head'; headSchema: infer H extends DescMessage; schema: infer D extends DescMessage }
    ? HeadImage<MessageShape<H>, MessageShape<D>>
  : KindDef<K> extends { layout: 'payload'; schema: infer D extends DescMessage } ? PayloadItem<MessageShape<D>>[]
  : KindDef<K> extends { layout: 'ghost' } ? GhostFileImage
  : never;

/** One item appended to an image of kind K by an ImageWriter. */
export type ImageItem<K extends ImageKindName> =
  KindDef<K> extends { layout: 'entries' | 'head'; schema: infer D extends DescMessage } ? MessageShape<D>
  : KindDef<K> extends { layout: 'payload' | 'ghost'; schema: infer D extends DescMessage }
    ? PayloadItem<MessageShape<D>>
  : never;

/** The head message an image of kind K starts with, if any. */
export type ImageHead<K extends ImageKindName> =
  KindDef<K> extends { layout: 'head' | 'ghost'; headSchema: infer H extends DescMessage } ? MessageShape<H>
  : undefined;

/** Kinds that have framing (a magic and entries), as opposed to raw images. */
export type FramedKindName = {
  [K in ImageKindName]: KindDef<K> extends { layout: 'raw' } ? never : K;
}[ImageKindName];

export function imageFileName<K extends ImageKindName>(kind: K, arg: NameArg<K>): string {
  const def: AnyKindDef = IMAGE_KINDS[kind];
  return (def.fileName as (a: NameArg<K>) => string)(arg);
}

/** The kinds whose file name matches, most specific first. */
export function kindsForFileName(fileName: string): ImageKindName[] {
  return (Object.keys(IMAGE_KINDS) as ImageKindName[]).filter((k) => IMAGE_KINDS[k].match.test(fileName));
}

/** Whether `fileName` is an image with no magic and no entries (pages, the netfilter tools' text). */
export function isRawImage(fileName: string): boolean {
  return kindsForFileName(fileName).some((k) => IMAGE_KINDS[k].layout === 'raw');
}
