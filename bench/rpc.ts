// A client of CRIU's RPC on a service socket (`stasis service`, `criu service`), for the
// benchmark: one connection per request, as libcriu makes them. The images directory goes as
// an fd of ours (images_dir_fd), the log into it.
import fs from 'node:fs';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { CriuReqSchema, CriuRespSchema, CriuReqType } from '../src/image/gen/stasis/rpc_pb.js';
import { socket, connectUnix, sendMessage, recvMessage, closeFd, AF_UNIX, SOCK_SEQPACKET } from '../src/sys/index.js';

/** A DUMP (of PID, killed after) or RESTORE (detached; `lazyPages`: CRIU's lazy_pages) of IMAGES through the service at ADDRESS; throws on failure. */
export function rpcRun(address: string, what: 'dump' | 'restore', images: string, pid = 0, lazyPages = false): void {
  const dir = fs.openSync(images, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const fd = socket(AF_UNIX, SOCK_SEQPACKET);
  try {
    connectUnix(fd, Buffer.from(address));
    const opts = { imagesDirFd: dir, logFile: `${what}.log`, logLevel: Number(process.env.RPC_LOG_LEVEL ?? 2), ...(what === 'dump' ? { pid } : {}), ...(lazyPages ? { lazyPages } : {}) };
    const type = what === 'dump' ? CriuReqType.DUMP : CriuReqType.RESTORE;
    sendMessage(fd, toBinary(CriuReqSchema, create(CriuReqSchema, { type, opts })));
    const m = recvMessage(fd);
    if (!m) throw new Error(`the service at ${address} closed the connection without a response`);
    const r = fromBinary(CriuRespSchema, m.data);
    if (!r.success) throw new Error(`${what} through the service at ${address} failed: ${r.crErrmsg ?? ''} (errno ${r.crErrno ?? 0})`);
  } finally {
    closeFd(fd);
    fs.closeSync(dir);
  }
}
