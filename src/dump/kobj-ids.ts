// The kernel object ids of ids-PID.img and inventory.img's root_ids, numbered as CRIU numbers
// them: the dumping process (root_ids) takes the first id of each kind, so a task's vm, files,
// fs and sighand ids never equal root_ids' (CRIU's restore would read that as the task
// sharing the restorer's fd table); namespace ids are one count over all kinds, in CRIU's
// order (pid, net, ipc, uts, time, mnt, user, cgroup), the same inode getting the same id.
import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { TaskKobjIdsEntrySchema, type TaskKobjIdsEntry } from '../image/gen/stasis/core_pb.js';

const NS_KINDS = [
  ['pid', 'pidNsId'], ['net', 'netNsId'], ['ipc', 'ipcNsId'], ['uts', 'utsNsId'],
  ['time', 'timeNsId'], ['mnt', 'mntNsId'], ['user', 'userNsId'], ['cgroup', 'cgroupNsId'],
] as const;

type NsField = (typeof NS_KINDS)[number][1];

export class KobjIds {
  private readonly ns = new Map<string, number>();
  /** inventory.img's root_ids: the ids of the process that dumps. */
  readonly root: TaskKobjIdsEntry;

  constructor() {
    this.root = create(TaskKobjIdsEntrySchema, { vmId: 1, filesId: 1, fsId: 1, sighandId: 1, ...this.nsIds('self') });
  }

  /** The ids of the n-th task of the tree (from 0): its own vm, files, fs and sighand (stasis does not dump processes that share them). */
  task(pid: number, n: number): TaskKobjIdsEntry {
    const id = n + 2;
    return create(TaskKobjIdsEntrySchema, { vmId: id, filesId: id, fsId: id, sighandId: id, ...this.nsIds(String(pid)) });
  }

  /** The id of a namespace by its link (`net:[4026531833]`), as tasks' ids name it. */
  nsIdOf(link: string): number {
    let id = this.ns.get(link);
    if (id === undefined) this.ns.set(link, (id = this.ns.size + 1));
    return id;
  }

  private nsIds(pid: string): Partial<Record<NsField, number>> {
    const out: Partial<Record<NsField, number>> = {};
    for (const [kind, field] of NS_KINDS) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
      } catch {
        continue; // a kernel without this kind of namespace
      }
      out[field] = this.nsIdOf(link);
    }
    return out;
  }
}
