// Mappings of packet sockets' rings (CRIU's VMA_AREA_SOCKET, dump_socket_map): once the
// task's fds are dumped, each such area names the socket's file object by its id, as CRIU's
// shmid does; restore maps that socket again. The socket must be one of the task's fds (CRIU
// asks the same), and the area the whole of its rings: the kernel maps them only so.
import fs from 'node:fs';
import { StasisError } from '../errors.js';
import { FileIds } from '../files/index.js';
import { packetSockets } from '../sys/index.js';
import { VMA } from '../mem/vma.js';
import type { CollectedTask } from './collect-task.js';

export function resolveSocketMaps(task: CollectedTask, ids: FileIds): void {
  const pid = task.pid;
  const socketVmas = task.vmas.map((v, i) => ({ v, e: task.mm.vmas[i] })).filter(({ v }) => v.status & VMA.SOCKET);
  if (!socketVmas.length) return;
  const fdOf = new Map<bigint, number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`).map(Number)) {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    if (m) fdOf.set(BigInt(m[1]!), fd);
  }
  const diag = packetSockets();
  for (const { v, e } of socketVmas) {
    const where = `0x${v.start.toString(16)}-0x${v.end.toString(16)} of pid ${pid} (socket:[${v.shmid}])`;
    const fd = fdOf.get(v.shmid);
    if (fd === undefined) throw new StasisError('E_UNSUPPORTED', `Cannot dump the socket mapping at ${where}: no fd of the task holds the socket any more, not supported yet`);
    const d = diag.get(Number(v.shmid));
    const ring = (r?: { blockSize: number; blockNr: number }) => (r ? r.blockSize * r.blockNr : 0);
    const size = d ? ring(d.rxRing) + ring(d.txRing) : 0;
    if (!d || v.pgoff !== 0n || BigInt(size) !== v.end - v.start) {
      throw new StasisError('E_UNSUPPORTED', `Cannot dump the socket mapping at ${where}: it is not the whole of a packet socket's rings (${size} bytes), which the kernel alone maps, not supported yet`);
    }
    const st = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
    const { id } = ids.lookup(FileIds.genid(st.dev, st.ino, 0n), pid, fd);
    v.shmid = BigInt(id);
    if (e) e.shmid = BigInt(id);
  }
}
