// `stasis swrk FD` (CRIU's swrk): the client (runc) made a SOCK_SEQPACKET pair, keeps one end
// and hands us the other as fd FD; we serve its requests until it closes. Nothing is written
// to stdout or stderr: on restore they are the restored container's stdio.
import { StasisError } from '../errors.js';
import { RpcConn } from './conn.js';
import { serveConnection } from './server.js';

export async function swrk(fdArg: string | undefined): Promise<void> {
  if (fdArg === undefined || !/^\d+$/.test(fdArg)) throw new StasisError('E_BAD_ARGS', 'Usage: stasis swrk FD (an fd of a SOCK_SEQPACKET socket)');
  const conn = new RpcConn(Number(fdArg));
  try {
    await serveConnection(conn, { swrk: true });
  } finally {
    conn.close();
  }
}
