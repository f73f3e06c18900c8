// `stasis service` (CRIU's service): a SOCK_SEQPACKET socket at --address that clients
// (libcriu, pycriu, go-criu) connect to, one request (or several, with keep_open) per
// connection, served one connection at a time. -d puts it in the background once it listens.
// Resident: the code is loaded (and compiled hot) once, at start, and each request runs on
// this thread with no start-up of its own. The roots of the trees it restores are its
// children (CRIU's service forks a worker per request, whose exit hands them to init): it
// reaps them when they exit, so that they leave no zombie behind. A lazy restore's filler
// thread is started ahead, idle until the request comes (lazy-pages.ts keepFillerReady).
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { accept4, listenSeqpacket, pollIn, waitPid, SOCK_CLOEXEC } from '../sys/index.js';
import { StasisError } from '../errors.js';
import { RpcConn } from './conn.js';
import { serveConnection } from './server.js';
import { DEFAULT_SERVICE_ADDRESS } from './address.js';
import { keepFillerReady, lazyPagesUnavailable } from '../mem/lazy-pages.js';
import { sleepSync } from '../sys/sleep.js';

export { DEFAULT_SERVICE_ADDRESS };

export interface ServiceOptions {
  address: string;
  /** Run in the background: start a copy without this flag, return once it listens. */
  daemon?: boolean;
  /** Where the serving process writes its pid. */
  pidfile?: string | undefined;
  /** Called once the socket listens (tests). */
  onListening?: () => void;
}

export async function service(o: ServiceOptions): Promise<void> {
  if (o.daemon) return daemonize(o);
  if (fs.statSync(o.address, { throwIfNoEntry: false })?.isSocket()) fs.rmSync(o.address);
  const lfd = listenSeqpacket(o.address);
  if (o.pidfile) fs.writeFileSync(o.pidfile, `${process.pid}`);
  o.onListening?.();
  // A restore --lazy-pages finds its filler thread loaded (its start-up was a third of the time to running).
  if (lazyPagesUnavailable() === null) keepFillerReady();
  const restored = new Set<number>();
  const hooks = { onRestored: (pid: number) => restored.add(pid) };
  for (;;) {
    // Between connections, the restored roots that exited are reaped (every 100 ms at most).
    while (!pollIn(lfd, restored.size ? 100 : -1)) reap(restored);
    reap(restored);
    const conn = new RpcConn(accept4(lfd, SOCK_CLOEXEC));
    try {
      await serveConnection(conn, hooks);
    } catch {
      /* one client's broken connection does not end the service */
    } finally {
      conn.close();
    }
  }
}

function reap(pids: Set<number>): void {
  for (const pid of pids) {
    try {
      const w = waitPid(pid, true);
      if (w && w.kind !== 'stopped') pids.delete(pid);
    } catch {
      pids.delete(pid); // ECHILD: not ours any more
    }
  }
}

function daemonize(o: ServiceOptions): void {
  if (fs.statSync(o.address, { throwIfNoEntry: false })?.isSocket()) fs.rmSync(o.address);
  const args = [process.argv[1]!, 'service', '--address', o.address, ...(o.pidfile ? ['--pidfile', o.pidfile] : [])];
  const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore' });
  child.unref();
  const until = Date.now() + 10000;
  while (!fs.statSync(o.address, { throwIfNoEntry: false })?.isSocket() || (o.pidfile && !fs.existsSync(o.pidfile))) {
    if (Date.now() > until) throw new StasisError('E_BAD_ARGS', `The service did not start listening on ${o.address}`);
    sleepSync(10);
  }
}
