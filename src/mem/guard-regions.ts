// Guard regions (MADV_GUARD_INSTALL, Linux 6.13): pages of a VMA that fault on any access,
// kept in no VMA of their own but as PTE markers, which pagemap shows as bit 58. CRIU 4.2
// writes each run of them as a VmaEntry of its own, status VMA_AREA_GUARD alone, after the
// task's real VMAs; restore installs them again with madvise() once the VMAs are mapped.
import fs from 'node:fs';
import os from 'node:os';
import { guardRuns } from '../proc/index.js';
import { pagemapScan, PAGE_IS, SyscallError } from '../sys/index.js';
import { StasisError } from '../errors.js';

const PAGE = 4096;
const CHUNK = 65536;

export interface GuardRegion {
  start: bigint;
  end: bigint;
}

const EINVAL = 22;

/**
 * The guard regions inside `vmas` (sorted by address), adjacent runs merged: asked of
 * PAGEMAP_SCAN (PAGE_IS_GUARD, Linux 6.14: the kernel walks only the page tables there
 * are), else read from pagemap on a 6.13 kernel; before 6.13 there are none.
 */
export function guardRegions(pagemapFd: number, vmas: { start: bigint; end: bigint }[], what: string): GuardRegion[] {
  if (vmas.length === 0) return [];
  try {
    const out: GuardRegion[] = [];
    pagemapScan(pagemapFd, vmas[0]!.start, vmas[vmas.length - 1]!.end, { flags: 0, categoryMask: PAGE_IS.GUARD, returnMask: PAGE_IS.GUARD }, (r) => {
      const last = out[out.length - 1];
      if (last && last.end === r.start) last.end = r.end;
      else out.push({ start: r.start, end: r.end });
    });
    return out;
  } catch (err) {
    if (!(err instanceof SyscallError) || (err.errno !== EINVAL && err.errno !== 25)) throw err;
  }
  const [major = 0, minor = 0] = os.release().split('.').map((x) => parseInt(x, 10));
  if (major < 6 || (major === 6 && minor < 13)) return [];
  return readGuardRegions(pagemapFd, vmas, what);
}

function readGuardRegions(pagemapFd: number, vmas: { start: bigint; end: bigint }[], what: string): GuardRegion[] {
  const out: GuardRegion[] = [];
  const pm = Buffer.allocUnsafe(CHUNK * 8);
  for (const v of vmas) {
    for (let addr = v.start; addr < v.end; ) {
      const pages = Math.min(CHUNK, Number((v.end - addr) / BigInt(PAGE)));
      const n = fs.readSync(pagemapFd, pm, 0, pages * 8, Number(addr / BigInt(PAGE)) * 8);
      if (n !== pages * 8) throw new StasisError('E_DUMP_FAILED', `Short read of ${what} at 0x${addr.toString(16)}`);
      for (const r of guardRuns(pm.subarray(0, n), addr, PAGE)) {
        const end = r.vaddr + BigInt(r.nrPages * PAGE);
        const last = out[out.length - 1];
        if (last && last.end === r.vaddr) last.end = end;
        else out.push({ start: r.vaddr, end });
      }
      addr += BigInt(pages * PAGE);
    }
  }
  return out;
}
