// Parsers for /proc files: pure functions from the file's text (or bytes) to typed objects.
export { ProcFormatError } from './proc-format-error.js';
export { parseMaps, parseMapsLine, type MapEntry, type MapPerms } from './maps.js';
export { parseSmaps, vmaFlags, type SmapsEntry, type VmaFlags } from './smaps.js';
export { parseStat, type ProcStat } from './stat.js';
export { parseStatus, type ProcStatus, type IdSet, type VmSizes } from './status.js';
export {
  parseFdinfo,
  kernelDev,
  type Fdinfo,
  type EventfdInfo,
  type EpollTarget,
  type FileHandle,
  type InotifyWatch,
  type FanotifyInfo,
  type FanotifyMark,
  type TimerfdInfo,
} from './fdinfo.js';
export { parseLocks, parseLockLine, type LockEntry, type LockKind, type LockMode, type LockType } from './locks.js';
export {
  scanPagemap,
  guardRuns,
  pagemapEntry,
  isPresent,
  isSwapped,
  isFilePage,
  isSoftDirty,
  entryPfn,
  PM_PRESENT,
  PM_SWAP,
  PM_FILE,
  PM_GUARD_REGION,
  PM_UFFD_WP,
  PM_MMAP_EXCLUSIVE,
  PM_SOFT_DIRTY,
  PM_PFN_MASK,
  type PagemapRun,
  type ScanOptions,
} from './pagemap.js';
export { parseAuxv, AT_NULL } from './auxv.js';
export { parseMountinfo, type MountInfo } from './mountinfo.js';
export { parsePosixTimers, SIGEV_THREAD_ID, type PosixTimerInfo } from './timers.js';
export { readProcText, readProcTextOrNull, readProcBuffer, readPagemap, procPath, type ProcPid } from './read.js';
export { parseNetSockets, type NetSocket } from './net-sockets.js';
export { parseCgroupFile, type CgroupMember } from './cgroup.js';
export { parseLimits } from './limits.js';
export { parseSchedstat, type ProcSchedstat } from './schedstat.js';
export { timesliceCounts, waitUntilRan } from './ran-since.js';
export { parseIgmp, parseIgmp6, type DeviceGroup } from './igmp.js';
