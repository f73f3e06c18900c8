// Serving CRIU's RPC requests on one connection (what `criu swrk` and each connection of
// `criu service` do): VERSION, CHECK, FEATURE_CHECK, DUMP, PRE_DUMP, RESTORE. Each request's
// options become the command line's (translate.ts) and run through the library; with
// notify_scripts the client hears every notify point and acks it before the run goes on.
import { CriuReqType, type CriuReq, type CriuOpts, type CriuRespSchema } from '../image/gen/stasis/rpc_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Notify } from '../api/index.js';
import { StasisError } from '../errors.js';
import { SyscallError } from '../sys/syscall-error.js';
import { dumpOptions, preDumpOptions, restoreOptions, openLog } from '../cli/build-options.js';
import type { Verb } from '../cli/options.js';
import type { Log } from '../log.js';
import { argsFromOpts, logArgsFromOpts } from './translate.js';
import type { RpcConn } from './conn.js';

type Resp = MessageInitShape<typeof CriuRespSchema>;

/** The CRIU release whose protocol and behaviour stasis follows (runc checks the number). */
export const CRIU_VERSION = { majorNumber: 4, minorNumber: 2, name: 'stasis' };

/** What the serving process is told of each request it served. */
export interface ServeHooks {
  /** A restore made this root task, a child of the serving process (`stasis service` reaps it). */
  onRestored?: (pid: number) => void;
  /**
   * The client started this process and is its parent (`stasis swrk`): a restore may make the
   * root its child (rst_sibling). CRIU refuses rst_sibling to a standalone service, whose parent is no client.
   */
  swrk?: boolean;
}

/** Serves requests until the client closes, or after a request that did not ask to keep the connection open. */
export async function serveConnection(conn: RpcConn, hooks: ServeHooks = {}): Promise<void> {
  for (;;) {
    const req = conn.recv();
    if (!req) return;
    const resp = await handle(conn, req, hooks.swrk ?? false);
    if (resp.restore?.pid) hooks.onRestored?.(resp.restore.pid);
    conn.send(resp);
    if (!req.keepOpen) return;
  }
}

// The library (the image codecs, the dump and restore code) is loaded only by the requests
// that run it: runc asks VERSION alone in a swrk of its own before each checkpoint and restore,
// and loading it first would about double the time of that answer.
async function handle(conn: RpcConn, req: CriuReq, swrk: boolean): Promise<Resp> {
  switch (req.type) {
    case CriuReqType.VERSION:
      return { type: req.type, success: true, version: CRIU_VERSION };
    case CriuReqType.CHECK: {
      const c = (await import('../api/index.js')).check();
      return c.ready ? { type: req.type, success: true } : { type: req.type, success: false, crErrmsg: 'The kernel lacks a feature stasis needs (see stasis check)' };
    }
    case CriuReqType.FEATURE_CHECK: {
      // Pre-dumps track memory on this kernel (uffd, soft-dirty or hashing). CRIU's lazy_pages means dump --lazy-pages with a page server too (runc asks before `checkpoint --lazy-pages`): stasis has restore --lazy-pages only.
      const asked = req.features;
      return {
        type: req.type, success: true,
        features: {
          ...(asked?.memTrack !== undefined ? { memTrack: true } : {}),
          ...(asked?.lazyPages !== undefined ? { lazyPages: false } : {}),
          ...(asked?.pidfdStore !== undefined ? { pidfdStore: false } : {}),
        },
      };
    }
    case CriuReqType.DUMP:
    case CriuReqType.PRE_DUMP:
    case CriuReqType.RESTORE:
      return run(conn, req, swrk);
    default:
      return { type: req.type, success: false, crErrmsg: `stasis does not serve ${CriuReqType[req.type] ?? req.type} requests` };
  }
}

const VERB: Partial<Record<CriuReqType, Verb>> = {
  [CriuReqType.DUMP]: 'dump', [CriuReqType.PRE_DUMP]: 'pre-dump', [CriuReqType.RESTORE]: 'restore',
};

async function run(conn: RpcConn, req: CriuReq, swrk: boolean): Promise<Resp> {
  const verb = VERB[req.type]!;
  let log: Log & { close?: () => void } | undefined;
  try {
    if (!req.opts) throw new StasisError('E_BAD_ARGS', `A ${verb} request needs its options`);
    const a = argsFromOpts(verb, req.opts, conn);
    if (verb !== 'restore' && !a.opts.has('tree')) {
      throw new StasisError('E_UNSUPPORTED', 'stasis cannot dump the process that asks for it: give opts.pid');
    }
    if (verb === 'restore') a.opts.set('restore-detached', true); // the tree runs on after the response
    if (verb === 'restore' && a.opts.get('restore-sibling') === true && !swrk) {
      throw new StasisError('E_UNSUPPORTED', 'rst_sibling is not allowed in a standalone service (the root would be a child of the service\'s parent, not of the client): use swrk');
    }
    log = openLog(a);
    log.info(`stasis ${verb} requested over RPC by pid ${conn.peer.pid}`);
    const io = { log, notify: notifier(conn, req.opts) };
    // Only the verb's own code is loaded (a restore does not build the dump's modules: 20-30 ms of a swrk's start).
    switch (verb) {
      case 'dump': {
        const { dump: dumpSync } = await import('../dump/dump.js');
        // runc gives its init's stdio pipes (descriptors.json) back with inherit_fd at restore:
        // they are taken as external, as CRIU dumps them; a restore that does not give them is
        // refused (stasis-external.json). Another pipe to a process outside is refused here.
        dumpSync({ ...dumpOptions(a, io), stdioPipesExternal: true });
        return { type: req.type, success: true, dump: { restored: false } };
      }
      case 'pre-dump': {
        const { preDump: preDumpSync } = await import('../dump/pre-dump.js');
        preDumpSync(preDumpOptions(a, io));
        return { type: req.type, success: true };
      }
      default: {
        const { restore: restoreSync } = await import('../restore/restore.js');
        const r = restoreSync(restoreOptions(a, io));
        return { type: req.type, success: true, restore: { pid: r.pid } };
      }
    }
  } catch (e) {
    const err = e as Error;
    const msg = e instanceof StasisError ? `${err.message} [${e.code}]` : err.message;
    // Refused before the log was opened (an option stasis does not support): logged all the same.
    if (!log && req.opts) {
      try {
        log = openLog(logArgsFromOpts(verb, req.opts, conn));
      } catch {
        /* nowhere to log */
      }
    }
    log?.error(e instanceof StasisError ? msg : err.stack ?? msg);
    return { type: req.type, success: false, crErrno: errnoOf(e), crErrmsg: msg };
  } finally {
    log?.close?.();
  }
}

/** The notify points as NOTIFY messages the client must ack (with notify_scripts), else nothing. */
function notifier(conn: RpcConn, o: CriuOpts): Notify | undefined {
  if (!o.notifyScripts) return undefined;
  return (event, pid) => {
    conn.send({ type: CriuReqType.NOTIFY, success: true, notify: { script: event, ...(pid !== undefined ? { pid } : {}) } });
    // Plain errors: the run reports them as its own failure (E_DUMP_FAILED, E_RESTORE_FAILED).
    const ack = conn.recv();
    if (!ack) throw new Error(`the client closed the connection instead of acking ${event}`);
    if (ack.type !== CriuReqType.NOTIFY) throw new Error(`the client answered ${event} with a ${CriuReqType[ack.type] ?? ack.type} request`);
    if (!ack.notifySuccess) throw new Error(`the client failed its ${event} step`);
  };
}

function errnoOf(e: unknown): number {
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) if (c instanceof SyscallError) return c.errno;
  return 0;
}
