// One connection of CRIU's RPC: CriuReq in, CriuResp out, one protobuf message per
// SOCK_SEQPACKET message. The client is known by SO_PEERCRED; the fd numbers it puts in a
// request are its own, reached through /proc/PEER/fd/N.
import fs from 'node:fs';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { CriuReqSchema, CriuRespSchema, type CriuReq } from '../image/gen/stasis/rpc_pb.js';
import { peerCred, recvMessage, sendMessage, closeFd, type PeerCred } from '../sys/index.js';
import { StasisError } from '../errors.js';
import type { PeerFds } from './translate.js';

export class RpcConn implements PeerFds {
  readonly peer: PeerCred;
  private readonly opened: number[] = [];

  /** `first`: a message already received from it (swrk looked at it before loading this). */
  constructor(readonly fd: number, private first?: { data: Buffer; fds: number[] }) {
    this.peer = peerCred(fd);
  }

  /** The next request; null once the client has closed its end. */
  recv(): CriuReq | null {
    const m = this.first ?? recvMessage(this.fd);
    this.first = undefined;
    if (!m) return null;
    for (const f of m.fds) closeFd(f);
    try {
      return fromBinary(CriuReqSchema, m.data);
    } catch (e) {
      throw new StasisError('E_CORRUPT', `Cannot decode a CriuReq of ${m.data.length} bytes from pid ${this.peer.pid}: ${(e as Error).message}`);
    }
  }

  send(resp: MessageInitShape<typeof CriuRespSchema>, fds: number[] = []): void {
    sendMessage(this.fd, toBinary(CriuRespSchema, create(CriuRespSchema, resp)), fds);
  }

  /**
   * A directory fd of the client's, as a path here: the path it has, when that path leads to
   * the same directory from here (so that relative parents such as ../pre work), else the
   * /proc link, held open until the connection ends.
   */
  dirOf(n: number, what: string): string {
    const link = `/proc/${this.peer.pid}/fd/${n}`;
    let st: fs.Stats;
    try {
      st = fs.statSync(link);
    } catch (e) {
      throw new StasisError('E_BAD_ARGS', `The ${what} ${n} of pid ${this.peer.pid} cannot be opened: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!st.isDirectory()) throw new StasisError('E_BAD_ARGS', `The ${what} ${n} of pid ${this.peer.pid} is not a directory`);
    try {
      const p = fs.readlinkSync(link);
      const here = fs.statSync(p);
      if (here.dev === st.dev && here.ino === st.ino) return p;
    } catch {
      /* not reachable by its path: use the link */
    }
    const fd = fs.openSync(link, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    this.opened.push(fd);
    return `/proc/${process.pid}/fd/${fd}`;
  }

  close(): void {
    for (const f of this.opened) fs.closeSync(f);
    this.opened.length = 0;
    closeFd(this.fd);
  }
}
