// Naming open file objects. Many fds, in many tasks, can stand for one file object (dup,
// fork). A cheap generic id (dev ^ ino ^ pos) sorts fds first; only fds whose generic ids
// collide are compared with kcmp(KCMP_FILE), and those that differ are kept in a list ordered
// by kcmp's own ordering, so each new fd costs at most log2(n) kcmp calls among its twins.
import { kcmpFile } from '../sys/index.js';

interface Representative {
  pid: number;
  fd: number;
  id: number;
}

export interface FileIdResult {
  id: number;
  /** True the first time this file object is seen: the caller dumps it. */
  isNew: boolean;
}

export class FileIds {
  private readonly byGenid = new Map<bigint, Representative[]>();
  private nextId = 1;
  kcmpCalls = 0;

  constructor(private readonly kcmp: (p1: number, p2: number, f1: number, f2: number) => number = kcmpFile) {}

  static genid(dev: bigint, ino: bigint, pos: bigint): bigint {
    return dev ^ ino ^ pos;
  }

  /** Allocates an id for an object that is not an fd (a mapped file, cwd, root). */
  fresh(): number {
    return this.nextId++;
  }

  lookup(genid: bigint, pid: number, fd: number): FileIdResult {
    let list = this.byGenid.get(genid);
    if (!list) {
      const rep = { pid, fd, id: this.nextId++ };
      this.byGenid.set(genid, [rep]);
      return { id: rep.id, isNew: true };
    }
    // Binary search in kcmp order: 0 same object, 1 ours sorts before, 2 after.
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const rep = list[mid] as Representative;
      this.kcmpCalls++;
      const c = this.kcmp(pid, rep.pid, fd, rep.fd);
      if (c === 0) return { id: rep.id, isNew: false };
      if (c === 1) hi = mid;
      else lo = mid + 1;
    }
    const rep = { pid, fd, id: this.nextId++ };
    list.splice(lo, 0, rep);
    return { id: rep.id, isNew: true };
  }
}
