// `stasis swrk FD` (CRIU's swrk): the client (runc) made a SOCK_SEQPACKET pair, keeps one end
// and hands us the other as fd FD; we serve its requests until it closes. Nothing is written
// to stdout or stderr: on restore they are the restored container's stdio.
//
// runc asks VERSION alone, in a swrk of its own, before each checkpoint and restore: that
// request is answered here from its bytes, without the protobuf descriptors of rpc.proto and
// the server's modules (their loading is most of such a swrk's own time); any other request
// goes to the server whole.
import { StasisError } from '../errors.js';
import { recvMessage, sendMessage } from '../sys/seqpacket.js';
import { CRIU_VERSION_BYTES, isVersionRequest } from './version-wire.js';

export async function swrk(fdArg: string | undefined): Promise<void> {
  if (fdArg === undefined || !/^\d+$/.test(fdArg)) throw new StasisError('E_BAD_ARGS', 'Usage: stasis swrk FD (an fd of a SOCK_SEQPACKET socket)');
  const fd = Number(fdArg);
  const first = recvMessage(fd);
  if (!first) return;
  if (first.fds.length === 0 && isVersionRequest(first.data)) {
    sendMessage(fd, CRIU_VERSION_BYTES); // (no keep_open: the connection ends with the answer, as the server ends it)
    return;
  }
  return serve(fd, first);
}

async function serve(fd: number, first: { data: Buffer; fds: number[] }): Promise<void> {
  const { RpcConn } = await import('./conn.js');
  const { serveConnection } = await import('./server.js');
  const conn = new RpcConn(fd, first);
  try {
    await serveConnection(conn, { swrk: true });
  } finally {
    conn.close();
  }
}
