// Restoring cgroup membership (CRIU's prepare_cgroup and prepare_task_cgroup), before any
// task exists: the directories of cgroup.img are found or made as --manage-cgroups says, with
// their properties; then each task, still a stub, is moved into its set's cgroups before it
// clones its children, who are born in them. A task of stasis's own set at dump
// (inventory's root_cg_set) goes where the restoring stasis is. Modes (CRIU's):
//   none   the directories must exist; nothing of theirs is set
//   props  they must exist; their properties are set
//   soft   (default) missing ones are made with their properties; existing ones left as they are
//   full   missing ones are made; every one gets its properties
//   strict none may exist; all are made with their properties
//   ignore cgroups are not touched: the tasks stay where stasis is
// Every hierarchy is reached through a detached mount of its own (openCgroupFs): nothing is
// mounted where anyone sees it.
import fs from 'node:fs';
import { openCgroupFs, closeFd } from '../sys/index.js';
import { imageExists, readImage } from '../image/index.js';
import { parseCgroupFile, type CgroupMember } from '../proc/index.js';
import type { CgroupEntry, CgroupDirEntry, CgControllerEntry } from '../image/gen/stasis/cgroup_pb.js';
import { StasisError } from '../errors.js';
import type { Log } from '../log.js';
import { SPECIAL, setPerms, writeProperty } from './props.js';
import type { CgroupMode } from './dump-cgroups.js';

/** --cgroup-root [CONTROLLER:]/PATH: the cgroups dumped at a hierarchy's top directory go under PATH instead. */
export interface CgroupRoot {
  controller?: string | undefined;
  path: string;
}

/** The hierarchy a member (`cpu,cpuacct`, `name=x`, `` for v2) belongs to (CRIU's cgroup_contains). */
function holds(c: CgControllerEntry, name: string): boolean {
  if (c.cnames.length === 1 && c.cnames[0] === '') return name === '';
  const parts = name.split(',');
  return c.cnames.length > 0 && c.cnames.every((n) => parts.includes(n));
}

const join = (a: string, b: string) => `${a.replace(/\/+$/, '')}/${b.replace(/^\/+/, '')}`.replace(/\/+$/, '') || '/';

export class CgroupRestore {
  private readonly fds = new Map<string, number>();
  /** Directories made, in order (removed again, last first, by a failed restore). */
  private readonly made: string[] = [];

  private constructor(
    private readonly image: CgroupEntry | undefined,
    private readonly rootSet: number,
    private readonly mode: CgroupMode,
    private readonly log: Log,
  ) {}

  /** Reads cgroup.img and makes its directories; throws, having undone what it made, where the mode forbids. */
  static prepare(dir: string, rootSet: number | undefined, mode: CgroupMode, roots: CgroupRoot[], log: Log): CgroupRestore {
    const image = mode !== 'ignore' && imageExists(dir, 'cgroup', undefined) ? readImage(dir, 'cgroup', undefined)[0] : undefined;
    const cg = new CgroupRestore(image, rootSet ?? 0, mode, log);
    if (!image) {
      if (mode === 'ignore') log.info('cgroups ignored (--manage-cgroups=ignore): the tasks stay in stasis\'s');
      return cg;
    }
    for (const s of image.sets) {
      const p = s.ctls.find((m) => m.cgnsPrefix);
      if (p) throw new StasisError('E_UNSUPPORTED', `Cannot restore cgroup set ${s.id}: its cgroup ${p.path} has a cgroup namespace prefix, which stasis cannot restore`);
    }
    rewriteRoots(image, roots, log);
    try {
      for (const c of image.controllers) {
        if (!c.dirs.length) continue;
        const base = cg.base(c.cnames.join(','));
        for (const d of c.dirs) cg.prepareDir(base, '/', d, c.cnames.join(','));
      }
      // Every cgroup a task goes into exists now, or the restore stops before any task does.
      for (const s of image.sets) {
        for (const m of s.ctls) {
          const c = image.controllers.find((x) => holds(x, m.name));
          if (!c) throw new StasisError('E_CORRUPT', `cgroup.img: set ${s.id} names hierarchy "${m.name}", which it does not describe`);
          if (!fs.existsSync(join(cg.base(m.name), m.path))) {
            throw new StasisError('E_RESTORE_FAILED', `Cannot restore cgroup set ${s.id}: cgroup ${m.path} of hierarchy "${m.name}" does not exist`);
          }
        }
      }
    } catch (e) {
      cg.undo();
      cg.close();
      throw e;
    }
    return cg;
  }

  /** Moves the task with host pid `hostPid`, of set `setId`, into its cgroups (those it is in already are left). */
  place(setId: number | undefined, hostPid: number): void {
    if (!this.image || !setId) return;
    let members: CgroupMember[];
    if (setId === this.rootSet) members = parseCgroupFile(fs.readFileSync('/proc/self/cgroup', 'utf8'));
    else {
      const s = this.image.sets.find((x) => x.id === setId);
      if (!s) throw new StasisError('E_CORRUPT', `cgroup.img has no set ${setId}, which a task's core names`);
      members = s.ctls;
    }
    const now = new Map(parseCgroupFile(fs.readFileSync(`/proc/${hostPid}/cgroup`, 'utf8')).map((m) => [m.name, m.path]));
    for (const m of members) {
      if (now.get(m.name) === m.path) continue;
      const procs = join(join(this.base(m.name), m.path), 'cgroup.procs');
      try {
        fs.writeFileSync(procs, String(hostPid));
      } catch (e) {
        throw new StasisError('E_RESTORE_FAILED', `Cannot move pid ${hostPid} into cgroup ${m.path} of hierarchy "${m.name}": ${(e as Error).message}`, { cause: e });
      }
      this.log.debug(`pid ${hostPid} moved into cgroup ${m.path} of hierarchy "${m.name || 'v2'}"`);
    }
  }

  /** After a failed restore (its tasks gone): the directories it made are removed. */
  undo(): void {
    for (const d of [...this.made].reverse()) {
      try {
        fs.rmdirSync(d);
      } catch (e) {
        this.log.warn(`cgroup ${d} made by the failed restore could not be removed: ${(e as Error).message}`);
      }
    }
    this.made.length = 0;
  }

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
    this.fds.clear();
  }

  /** The path of the root of hierarchy `name` (through a detached mount of it). */
  private base(name: string): string {
    const key = name.startsWith('name=') || name === '' ? name : name.split(',').sort().join(',');
    let fd = this.fds.get(key);
    if (fd === undefined) {
      try {
        fd = openCgroupFs(name);
      } catch (e) {
        throw new StasisError('E_RESTORE_FAILED', `Cannot open cgroup hierarchy "${name}": ${(e as Error).message}`, { cause: e });
      }
      this.fds.set(key, fd);
    }
    return `/proc/self/fd/${fd}`;
  }

  private prepareDir(base: string, parent: string, d: CgroupDirEntry, hierarchy: string): void {
    const path = join(parent, d.dirName);
    const full = join(base, path);
    let setProps = false, made = false;
    if (d.dirName === '') {
      // A hierarchy's root: nothing of its own is set (CRIU skips root cgroups).
    } else if (!fs.existsSync(full)) {
      if (this.mode === 'none' || this.mode === 'props') {
        throw new StasisError('E_RESTORE_FAILED', `Cannot restore cgroup ${path} of hierarchy "${hierarchy}": it does not exist, and --manage-cgroups=${this.mode} makes none`);
      }
      this.mkdirs(base, path);
      this.log.info(`cgroup ${path} of hierarchy "${hierarchy || 'v2'}" made`);
      this.dirPerms(full, d);
      setProps = made = true;
    } else {
      if (this.mode === 'strict') throw new StasisError('E_RESTORE_FAILED', `Cannot restore cgroup ${path} of hierarchy "${hierarchy}": it exists already (--manage-cgroups=strict)`);
      if (this.mode !== 'none') this.dirPerms(full, d);
      setProps = this.mode === 'props' || this.mode === 'full';
    }
    if (setProps) for (const p of d.properties) if (made || !SPECIAL.has(p.name)) this.setProperty(full, p, hierarchy);
    for (const c of d.children) this.prepareDir(base, path, c, hierarchy);
  }

  private setProperty(dir: string, p: CgroupDirEntry['properties'][number], hierarchy: string): void {
    try {
      writeProperty(dir, p, (m) => this.log.warn(m));
    } catch (e) {
      throw new StasisError('E_RESTORE_FAILED', `Cannot set ${p.name} of a cgroup of hierarchy "${hierarchy}" to ${JSON.stringify(p.value)}: ${(e as Error).message}`, { cause: e });
    }
  }

  private dirPerms(full: string, d: CgroupDirEntry): void {
    const fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      setPerms(fd, d.dirPerms);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** mkdir -p, each directory made recorded. */
  private mkdirs(base: string, path: string): void {
    let at = base;
    for (const part of path.split('/').filter(Boolean)) {
      at = `${at}/${part}`;
      if (fs.existsSync(at)) continue;
      fs.mkdirSync(at, 0o755);
      this.made.push(at);
    }
  }
}

/**
 * --cgroup-root (CRIU's rewrite_cgroup_roots): in each hierarchy given a new root, every top
 * directory of the image is renamed to it, and the members below it follow.
 */
function rewriteRoots(image: CgroupEntry, roots: CgroupRoot[], log: Log): void {
  const global = roots.find((r) => r.controller === undefined)?.path;
  for (const c of image.controllers) {
    const mine = roots.filter((r) => r.controller !== undefined && r.controller.split(',').some((n) => c.cnames.includes(n)));
    const paths = new Set(mine.map((r) => r.path));
    if (paths.size > 1) throw new StasisError('E_BAD_ARGS', `--cgroup-root gives hierarchy "${c.cnames.join(',')}" two roots: ${[...paths].join(', ')}`);
    const root = mine[0]?.path ?? global;
    if (root === undefined) continue;
    for (const d of c.dirs) {
      const old = `/${d.dirName}`.replace(/\/+$/, '') || '/';
      for (const s of image.sets) {
        for (const m of s.ctls) {
          if (!holds(c, m.name)) continue;
          if (old === '/' || m.path === old || m.path.startsWith(`${old}/`)) m.path = join(root, m.path.slice(old === '/' ? 0 : old.length));
        }
      }
      log.info(`cgroup ${old} of hierarchy "${c.cnames.join(',') || 'v2'}" restored as ${root}`);
      d.dirName = root.replace(/^\/+/, '');
    }
  }
}
