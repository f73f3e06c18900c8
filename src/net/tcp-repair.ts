// One TCP connection through repair mode (CRIU's soccr/soccr.c): what a socket in TCP_REPAIR
// tells of its connection (sequence numbers, negotiated options, windows, both queues' bytes),
// and the same connection built again on a fresh socket, silently: in repair mode connect()
// sends no SYN and queued data is not transmitted. Half-closed connections get their FINs
// back too: one we sent by shutdown() in repair mode, one the peer sent by a segment handed to
// the socket as if from the peer (CRIU's send_fin); the network lock lets it pass by its mark.
//
// Sequence numbers: inq_seq is rcv_nxt and the receive queue is the inq_len bytes before it;
// outq_seq is write_seq and the send queue is the outq_len bytes before it, the last unsq_len
// of them never sent. A FIN takes one sequence number but no byte: it is counted in the
// sequences the kernel reports and in SIOCOUTQ, so it is taken out of the lengths at dump and
// out of the sequences at restore, and put back by the FIN tricks.
import { create } from '@bufbuild/protobuf';
import { TcpStreamEntrySchema, type TcpStreamEntry } from '../image/gen/stasis/tcp-stream_pb.js';
import {
  AF_INET, AF_INET6, SHUT_WR, SyscallError, bindInet, connectInet, fcntl, getRepairWindow, getsockoptInt, getsockoptU32,
  inqLen, outqLen, peekQueue, sendAll, sendRawIp, setRepairOptions, setRepairWindow, setsockoptInt, setsockoptU32, shutdown,
  tcpInfo, unsentLen,
  SOL_TCP, TCP_MAXSEG, TCP_QUEUE_SEQ, TCP_RECV_QUEUE, TCP_REPAIR, TCP_REPAIR_OFF, TCP_REPAIR_ON, TCP_REPAIR_QUEUE,
  TCP_SEND_QUEUE, TCP_NO_QUEUE, TCP_TIMESTAMP, TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS, TCPI_OPT_WSCALE, TCPOPT_MAXSEG,
  TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW,
} from '../sys/index.js';
import { buildSegment, TH_ACK, TH_FIN } from './segment.js';
import { SOCCR_MARK, type Conn } from './network-lock.js';
import { sleepSync } from '../sys/sleep.js';

export const TCP_ESTABLISHED = 1, TCP_SYN_SENT = 2, TCP_FIN_WAIT1 = 4, TCP_FIN_WAIT2 = 5, TCP_CLOSE = 7;
export const TCP_CLOSE_WAIT = 8, TCP_LAST_ACK = 9, TCP_LISTEN = 10, TCP_CLOSING = 11;
const F = (...states: number[]) => states.reduce((m, s) => m | (1 << s), 0);
/** States a connection can be saved in and brought back to. */
export const REPAIRABLE = F(TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_CLOSE, TCP_SYN_SENT);
// Our FIN: shutdown() before the peer's FIN is handed in, or after; acknowledged by the peer.
const SNDQ_FIRST_FIN = F(TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSING);
const SNDQ_SECOND_FIN = F(TCP_LAST_ACK, TCP_CLOSE);
const SNDQ_FIN_ACKED = F(TCP_FIN_WAIT2, TCP_CLOSE);
// The peer's FIN: received before ours was sent, or after; acknowledged by us.
const RCVQ_FIRST_FIN = F(TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSE);
const RCVQ_SECOND_FIN = F(TCP_CLOSING);
const RCVQ_FIN_ACKED = F(TCP_CLOSE);

export interface SavedConnection {
  state: number;
  entry: TcpStreamEntry;
  /** The receive queue's bytes, then the send queue's. */
  queues: Buffer;
}

export function repairOn(fd: number): void {
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON);
}

export function repairOff(fd: number): void {
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_OFF);
}

function queueSeq(fd: number, queue: number): number {
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, queue);
  return getsockoptU32(fd, SOL_TCP, TCP_QUEUE_SEQ);
}

/** The connection of a socket in repair mode (soccr's libsoccr_save). */
export function saveConnection(fd: number): SavedConnection {
  const ti = tcpInfo(fd);
  if (!((1 << ti.state) & REPAIRABLE)) throw new SyscallError('getsockopt', 22, `TCP_INFO: state ${ti.state} cannot be repaired`);
  const state = ti.state;
  let outq = outqLen(fd), unsq = unsentLen(fd);
  // A reset connection's send queue cannot be read by anyone: dropped, as soccr does.
  if (state === TCP_CLOSE) outq = unsq = 0;
  if ((1 << state) & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN)) {
    if (outq) outq--;
    if (unsq) unsq--;
  }
  const inq = inqLen(fd);
  const e = create(TcpStreamEntrySchema, {
    inqLen: inq, outqLen: outq, unsqLen: unsq, optMask: ti.options, mssClamp: getsockoptInt(fd, SOL_TCP, TCP_MAXSEG),
    sndWscale: 0,
  });
  if (ti.options & TCPI_OPT_WSCALE) {
    e.sndWscale = ti.sndWscale;
    e.rcvWscale = ti.rcvWscale;
  }
  if (ti.options & TCPI_OPT_TIMESTAMPS) e.timestamp = getsockoptU32(fd, SOL_TCP, TCP_TIMESTAMP);
  const w = getRepairWindow(fd);
  if (w) Object.assign(e, { sndWl1: w.sndWl1, sndWnd: w.sndWnd, maxWindow: w.maxWindow, rcvWnd: w.rcvWnd, rcvWup: w.rcvWup });
  e.inqSeq = queueSeq(fd, TCP_RECV_QUEUE);
  const inBytes = peekQueue(fd, inq);
  e.outqSeq = queueSeq(fd, TCP_SEND_QUEUE);
  const outBytes = peekQueue(fd, outq);
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
  return { state, entry: e, queues: Buffer.concat([inBytes, outBytes]) };
}

/** A segment to `c`'s socket as if its peer had sent it, let through the network lock by its mark. */
function sendAsPeer(c: Conn, seq: number, ack: number, flags: number, window: number): void {
  const mapped = c.family === AF_INET6 && c.dst[0] === 0 && c.dst[1] === 0 && (c.dst[2]! >>> 0) === 0xffff0000;
  const v4 = c.family === AF_INET || mapped;
  const s = buildSegment({
    ip: v4 ? 4 : 6, src: v4 && mapped ? [c.dst[3]!] : c.dst, dst: v4 && mapped ? [c.src[3]!] : c.src,
    srcPort: c.dstPort, dstPort: c.srcPort, seq, ack, flags, window,
  });
  sendRawIp(v4 ? AF_INET : AF_INET6, s.packet, s.dst, SOCCR_MARK);
}

/** Waits (briefly: the segment is handled on its way in) for the socket to reach `state`. */
function awaitState(fd: number, state: number, after: string): void {
  const end = performance.now() + 1000;
  for (;;) {
    const now = tcpInfo(fd).state;
    if (now === state) return;
    // The segment did not arrive: with the nftables lock, a rule of the namespace's own that drops it still does.
    if (performance.now() > end) throw new SyscallError('tcp repair', 5, `state ${now}, not ${state}, after ${after}: the segment did not reach the socket (a netfilter rule may drop it)`);
    sleepSync(2);
  }
}

function finInSendQueue(fd: number, acked: boolean): void {
  // With TCP_SEND_QUEUE selected, the FIN is queued as sent already (it was acknowledged).
  if (acked) setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
  shutdown(fd, SHUT_WR);
  if (acked) setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
}

const O_NONBLOCK = 0o4000, F_GETFL = 3, F_SETFL = 4;

/**
 * Builds a saved connection on `fd`, a fresh TCP socket in repair mode with its buffer sizes
 * set (the queues must fit): binds it to `c.src`, connects it to `c.dst`, and leaves it in
 * repair mode (the caller turns it off once the tree runs). soccr's libsoccr_restore.
 */
export function restoreConnection(fd: number, c: Conn, state: number, e: TcpStreamEntry, queues: Buffer): void {
  const mstate = 1 << state;
  if (!(mstate & REPAIRABLE)) throw new SyscallError('tcp repair', 22, `state ${state} cannot be restored`);
  if (queues.length !== e.inqLen + e.outqLen) throw new SyscallError('tcp repair', 22, `${queues.length} queued bytes, ${e.inqLen + e.outqLen} expected`);
  bindInet(fd, c.family, c.src, c.srcPort);
  let inqSeq = e.inqSeq, outqSeq = e.outqSeq;
  if (mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN)) inqSeq--;
  if (mstate & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN)) outqSeq--;
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
  setsockoptU32(fd, SOL_TCP, TCP_QUEUE_SEQ, inqSeq - e.inqLen);
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
  // A SYN_SENT socket's SYN is sent again, out of repair mode, with the sequence it had.
  setsockoptU32(fd, SOL_TCP, TCP_QUEUE_SEQ, outqSeq - e.outqLen - (state === TCP_SYN_SENT ? 1 : 0));
  if (state === TCP_SYN_SENT) {
    const fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    repairOff(fd);
    try {
      connectInet(fd, c.family, c.dst, c.dstPort);
    } catch (err) {
      if (!(err instanceof SyscallError && err.errno === 115 /* EINPROGRESS */)) throw err;
    }
    fcntl(fd, F_SETFL, fl);
    repairOn(fd);
    return;
  }
  connectInet(fd, c.family, c.dst, c.dstPort);
  const opts: [number, number][] = [];
  if (e.optMask & TCPI_OPT_SACK) opts.push([TCPOPT_SACK_PERM, 0]);
  if (e.optMask & TCPI_OPT_WSCALE) opts.push([TCPOPT_WINDOW, e.sndWscale + ((e.rcvWscale ?? 0) << 16)]);
  if (e.optMask & TCPI_OPT_TIMESTAMPS) opts.push([TCPOPT_TIMESTAMP, 0]);
  opts.push([TCPOPT_MAXSEG, e.mssClamp]);
  setRepairOptions(fd, opts);
  if (e.optMask & TCPI_OPT_TIMESTAMPS) setsockoptU32(fd, SOL_TCP, TCP_TIMESTAMP, e.timestamp ?? 0);

  if (e.inqLen) {
    setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
    sendAll(fd, queues.subarray(0, e.inqLen));
  }
  // What was sent is queued as sent (the peer may acknowledge it); what was not is sent anew,
  // out of repair mode (the lock holds it until the restore is done), once the window is set.
  const unsent = e.unsqLen ?? 0, sent = e.outqLen - unsent;
  if (sent) {
    setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
    sendAll(fd, queues.subarray(e.inqLen, e.inqLen + sent));
  }
  setsockoptInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
  if (e.sndWnd !== undefined) {
    const w = { sndWl1: e.sndWl1 ?? 0, sndWnd: e.sndWnd, maxWindow: e.maxWindow ?? 0, rcvWnd: e.rcvWnd ?? 0, rcvWup: e.rcvWup ?? 0 };
    // The peer's FIN is not in yet: the window's edge is one short of where the dump saw it.
    if (mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN)) {
      w.rcvWup--;
      w.rcvWnd++;
    }
    // snd_wl1 is the sequence of the segment that last moved the send window. A segment held
    // out of order (past rcv_nxt, the receive buffer full) moves it too, so it can be far past
    // rcv_nxt; that segment is not in the image (the peer sends it again), and the kernel
    // refuses a snd_wl1 past rcv_nxt + rcv_wnd (EINVAL). rcv_nxt is as good: the next segment
    // is at or past it, so it still updates the window.
    const rcvNxt = inqSeq >>> 0;
    if ((((w.sndWl1 - rcvNxt) | 0) > 0)) w.sndWl1 = rcvNxt;
    setRepairWindow(fd, w);
  }
  // After the window: sent before it, the bytes would go out past the peer's window (the socket
  // has none yet), and the peer drops, as beyond its window, every later segment that carries
  // them, its window updates too; with a window of 0 both ways, the connection never moves
  // again (zdtm socket-tcpbuf-local hung so). Sent now, they wait for the window as they did.
  if (unsent) {
    repairOff(fd);
    sendAll(fd, queues.subarray(e.inqLen + sent));
    repairOn(fd);
  }
  const rcvWnd = e.rcvWnd ?? 0xffff;
  if (mstate & SNDQ_FIRST_FIN) finInSendQueue(fd, (mstate & SNDQ_FIN_ACKED) !== 0);
  if (mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN)) {
    sendAsPeer(c, inqSeq, outqSeq - e.outqLen, TH_ACK | TH_FIN, rcvWnd);
    awaitState(fd, mstate & RCVQ_SECOND_FIN ? TCP_CLOSING : TCP_CLOSE_WAIT, 'the peer\'s FIN');
  }
  if (mstate & SNDQ_SECOND_FIN) finInSendQueue(fd, (mstate & SNDQ_FIN_ACKED) !== 0);
  if (mstate & RCVQ_FIN_ACKED) inqSeq++;
  if (mstate & SNDQ_FIN_ACKED) {
    outqSeq++;
    sendAsPeer(c, inqSeq, outqSeq - e.outqLen, TH_ACK, rcvWnd);
    awaitState(fd, state, 'the peer\'s ACK of our FIN');
  }
  const now = tcpInfo(fd).state;
  if (now !== state) throw new SyscallError('tcp repair', 5, `state ${now} restored, not ${state}`);
}
