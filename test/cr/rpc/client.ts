// A small client of CRIU's RPC, as runc is one: a SOCK_SEQPACKET pair, `stasis swrk 3` on
// the other end, CriuReq out and CriuResp in, every NOTIFY acked (or refused) as it comes.
import path from 'node:path';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { CriuReqSchema, CriuRespSchema, CriuReqType, type CriuResp } from '../../../src/image/gen/stasis/rpc_pb.js';
import { socketpair, SOCK_SEQPACKET, sendMessage, recvMessage, closeFd, spawnTask, waitPid, type Stdio, type WaitResult } from '../../../src/sys/index.js';
import { REPO } from '../harness.js';

export type Req = MessageInitShape<typeof CriuReqSchema>;

export class SwrkClient {
  readonly fd: number;
  readonly pid: number;
  /** Every NOTIFY the server sent, as script (pid). */
  readonly notified: string[] = [];

  /** `stdout`: swrk's fd 1, as runc gives it a restored container's new stdout (for inherit_fd fd 1). */
  /** `launcher`: bin/stasis.js run as runc runs it, a program (its shell lines first), not by node. */
  constructor(env: Record<string, string | undefined> = process.env, stdio: { stdout?: Stdio; stderr?: Stdio } = {}, launcher = false) {
    const [mine, theirs] = socketpair(SOCK_SEQPACKET);
    this.fd = mine;
    const bin = path.join(REPO, 'bin/stasis.js');
    this.pid = spawnTask([...(launcher ? [] : [process.execPath]), bin, 'swrk', '3'], {
      passFds: [theirs], env, stdin: { path: '/dev/null' }, stdout: stdio.stdout ?? { path: '/dev/null' }, stderr: stdio.stderr ?? { path: '/dev/null' },
    });
    closeFd(theirs);
  }

  /** Sends the bytes of a request as they are (no encoding), with `fds` passed along. */
  send(data: Uint8Array, fds: number[] = []): void {
    sendMessage(this.fd, data, fds);
  }

  /** Sends a request and returns its response; NOTIFY messages on the way are acked with `ack(script)` (default true). */
  call(req: Req, ack: (script: string) => boolean = () => true): CriuResp {
    sendMessage(this.fd, toBinary(CriuReqSchema, create(CriuReqSchema, req)));
    for (;;) {
      const m = recvMessage(this.fd);
      if (!m) throw new Error('the server closed the connection without a response');
      const resp = fromBinary(CriuRespSchema, m.data);
      if (resp.type !== CriuReqType.NOTIFY) return resp;
      const script = resp.notify?.script ?? '';
      this.notified.push(resp.notify?.pid ? `${script} (${resp.notify.pid})` : script);
      sendMessage(this.fd, toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.NOTIFY, notifySuccess: ack(script) })));
    }
  }

  /** Closes our end and waits for the server to exit. */
  close(): WaitResult | null {
    closeFd(this.fd);
    for (;;) {
      const w = waitPid(this.pid);
      if (w && w.kind !== 'stopped') return w;
    }
  }
}
