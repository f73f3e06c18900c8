// The training run of `npm run build` (tools/build-snapshot.cjs): a dump and a restore of a
// sleeping program, through the command line's own code, in a process that then hands V8's
// code cache of the bundle to the start-up snapshot. The snapshot so holds the bytecode of
// every function they ran (the dump, the restore, the same two through CRIU's RPC as runc asks
// them of `stasis swrk`, then a restore --lazy-pages, a pre-dump and an incremental dump): a
// command compiles none of them again (each function's first call
// otherwise parses and compiles it, about 20 ms of a small dump and 15 of its restore here),
// and the functions nothing ran stay uncompiled, out of the snapshot.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTask, resolveExecutable, kill, pidExists, socketpair, sendMessage, recvMessage, closeFd, dupFd, SOCK_SEQPACKET } from '../sys/index.js';
import { parseStat } from '../proc/index.js';
import { waitTask } from '../api/tasks.js';
import { sleepSync } from '../sys/sleep.js';


/** Whether `pid` runs `exe` and sleeps (its exec done, in its nanosleep). */
function asleepIn(pid: number, exe: string): boolean {
  try {
    if (fs.readlinkSync(`/proc/${pid}/exe`) !== fs.realpathSync(exe)) return false;
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).state === 'S';
  } catch {
    return false;
  }
}

/** Kills and reaps a child of this process, if it is still there. */
function end(pid: number): void {
  if (!pid || !pidExists(pid)) return;
  try {
    kill(pid, 9);
  } catch {
    /* gone */
  }
  try {
    waitTask(pid);
  } catch {
    /* not a child of this process (reaped already) */
  }
}

/**
 * A DUMP (of `pid`) or a RESTORE of the images in `images`, with runc's options (notify_scripts,
 * a log at level 4), served by swrk() here on one end of a SOCK_SEQPACKET pair: the request and
 * an ack for each notify point are queued on the other end first (swrk() blocks on its reads).
 * Whether it succeeded (a restore: of `pid`).
 */
async function overRpc(r: { type: 'dump' | 'restore'; pid: number; images: string }): Promise<boolean> {
  const { create, fromBinary, toBinary } = await import('@bufbuild/protobuf');
  const { CriuReqSchema, CriuRespSchema, CriuReqType } = await import('../image/gen/stasis/rpc_pb.js');
  const { swrk } = await import('../rpc/swrk.js');
  const dirFd = fs.openSync(r.images, 'r');
  const [mine, theirs] = socketpair(SOCK_SEQPACKET);
  // (Their end held open here too: swrk() closes its own with acks left unread, which would
  // reset the connection, the response unread on this end.)
  const held = dupFd(theirs);
  try {
    const type = r.type === 'dump' ? CriuReqType.DUMP : CriuReqType.RESTORE;
    const opts = { imagesDirFd: dirFd, logLevel: 4, logFile: `${r.type}.log`, notifyScripts: true, ...(r.type === 'dump' ? { pid: r.pid } : {}) };
    sendMessage(mine, toBinary(CriuReqSchema, create(CriuReqSchema, { type, opts })));
    const ack = toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.NOTIFY, notifySuccess: true }));
    for (let i = 0; i < 16; i++) sendMessage(mine, ack);
    await swrk(String(theirs)); // (which closes its end once served)
    // (The notify points, then the response: all queued, as swrk() returned after sending it.)
    for (;;) {
      const m = recvMessage(mine);
      const resp = m && fromBinary(CriuRespSchema, m.data);
      if (!resp) return false;
      if (resp.type !== CriuReqType.NOTIFY) return resp.success && (r.type === 'dump' || resp.restore?.pid === r.pid);
    }
  } catch {
    return false;
  } finally {
    closeFd(mine);
    closeFd(held);
    fs.closeSync(dirFd);
  }
}

/**
 * Dumps a `sleep` started here into a directory of its own, restores it (-d), kills what it
 * restored, dumps and restores it through the RPC (overRpc()), restores it again with --lazy-pages, pre-dumps that and dumps it incrementally:
 * what the command line runs for `dump -t PID -D DIR`, `restore -D DIR -d [--lazy-pages]`,
 * `pre-dump` and `dump --prev-images-dir`. Throws when the first dump or restore fails (the
 * others may be out of this kernel's reach); leaves no process and no directory behind.
 * Returns the steps that ran, by name.
 */
export async function train(main: (argv: string[]) => Promise<number>): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-train-'));
  const images = path.join(dir, 'images');
  const done: string[] = [];
  let pid = 0;
  try {
    const exe = resolveExecutable('sleep');
    const quiet = { path: '/dev/null' };
    pid = spawnTask([exe, '60'], { setsid: true, stdin: quiet, stdout: quiet, stderr: quiet });
    for (let i = 0; i < 400 && !asleepIn(pid, exe); i++) sleepSync(5);
    if (!asleepIn(pid, exe)) throw new Error(`the sample ${exe} (pid ${pid}) did not start`);
    if (await main(['dump', '-t', String(pid), '-D', images, '-o', 'dump.log', '-v4']) !== 0) throw new Error(`its dump failed (see ${images}/dump.log)`);
    done.push('dump');
    end(pid); // (killed by the dump: reaped, so that its pid is free for the restore)
    if (await main(['restore', '-D', images, '-d', '-o', 'restore.log', '-v4']) !== 0) throw new Error(`its restore failed (see ${images}/restore.log)`);
    if (!asleepIn(pid, exe)) throw new Error(`the restored pid ${pid} is not the sleeping sample`);
    done.push('restore');
    // The same two through the RPC, as runc asks them (where that fails, the command line's
    // training goes on without).
    const rpc = path.join(dir, 'rpc');
    fs.mkdirSync(rpc);
    if (await overRpc({ type: 'dump', pid, images: rpc })) {
      done.push('rpc dump');
      end(pid);
      if (await overRpc({ type: 'restore', pid, images: rpc })) done.push('rpc restore');
    }
    end(pid);
    // Then restore --lazy-pages, where the kernel has what it needs (userfaultfd): a machine
    // without it trains the plain restore alone.
    if (await main(['restore', '-D', images, '-d', '--lazy-pages', '-o', 'lazy.log', '-v4']) !== 0 || !asleepIn(pid, exe)) return done;
    done.push('restore --lazy-pages');
    // And a migration's steps on what it restored, where the kernel tracks writes: a pre-dump,
    // then a dump of what changed since (written into a directory beside the first).
    const pre = path.join(dir, 'pre'), last = path.join(dir, 'last');
    if (await main(['pre-dump', '-t', String(pid), '-D', pre, '-o', 'pre.log', '-v4']) !== 0) return done;
    done.push('pre-dump');
    if (await main(['dump', '-t', String(pid), '-D', last, '--prev-images-dir', '../pre', '--track-mem', '-o', 'dump.log', '-v4']) === 0) done.push('dump --prev-images-dir');
    return done;
  } finally {
    end(pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
