// The XSAVE area as ptrace's NT_X86_XSTATE returns it (standard, non-compacted format),
// split into the fields CRIU's images keep, and put back together over a fresh task's area.
import { xstateComponent } from './cpuid.js';

export interface FpuFields {
  cwd: number; swd: number; twd: number; fop: number; rip: bigint; rdp: bigint; mxcsr: number; mxcsrMask: number;
  stSpace: number[]; xmmSpace: number[]; padding: number[];
  xsave?: {
    xstateBv: bigint; ymmhSpace: number[]; bndregState: bigint[]; bndcsrState: bigint[];
    opmaskReg: bigint[]; zmmUpper: bigint[]; hi16Zmm: bigint[]; pkru: number[];
  };
}

// Standard-format offsets of the components CRIU records, as this CPU places them (CPUID
// leaf 0xD; Intel SDM vol. 1, 13.4): they differ between vendors.
function layout() {
  return {
    YMMH: xstateComponent(2), BNDREGS: xstateComponent(3), BNDCSR: xstateComponent(4), OPMASK: xstateComponent(5),
    ZMM_HI256: xstateComponent(6), HI16_ZMM: xstateComponent(7), PKRU: xstateComponent(9),
  };
}

const u32s = (b: Buffer, off: number, n: number) => Array.from({ length: n }, (_, i) => b.readUInt32LE(off + i * 4));
const u64s = (b: Buffer, off: number, n: number) => Array.from({ length: n }, (_, i) => b.readBigUInt64LE(off + i * 8));
const has = (b: Buffer, c: { off: number; len: number }) => c.len > 0 && b.length >= c.off + c.len;

export function splitFpu(b: Buffer, xsave: boolean): FpuFields {
  const f: FpuFields = {
    cwd: b.readUInt16LE(0), swd: b.readUInt16LE(2), twd: b.readUInt16LE(4), fop: b.readUInt16LE(6),
    rip: b.readBigUInt64LE(8), rdp: b.readBigUInt64LE(16), mxcsr: b.readUInt32LE(24), mxcsrMask: b.readUInt32LE(28),
    stSpace: u32s(b, 32, 32), xmmSpace: u32s(b, 160, 64), padding: u32s(b, 416, 24),
  };
  if (xsave && b.length >= 576) {
    const { YMMH, BNDREGS, BNDCSR, OPMASK, ZMM_HI256, HI16_ZMM, PKRU } = layout();
    f.xsave = {
      xstateBv: b.readBigUInt64LE(512),
      ymmhSpace: has(b, YMMH) ? u32s(b, YMMH.off, 64) : [],
      bndregState: has(b, BNDREGS) ? u64s(b, BNDREGS.off, 8) : [],
      bndcsrState: has(b, BNDCSR) ? u64s(b, BNDCSR.off, 8) : [],
      opmaskReg: has(b, OPMASK) ? u64s(b, OPMASK.off, 8) : [],
      zmmUpper: has(b, ZMM_HI256) ? u64s(b, ZMM_HI256.off, 64) : [],
      hi16Zmm: has(b, HI16_ZMM) ? u64s(b, HI16_ZMM.off, 128) : [],
      pkru: has(b, PKRU) ? u32s(b, PKRU.off, 2) : [],
    };
  }
  return f;
}

/** Writes the fields over `base` (the area of the task being restored, for its layout). */
export function joinFpu(base: Buffer, f: FpuFields): Buffer {
  const b = Buffer.from(base);
  b.writeUInt16LE(f.cwd & 0xffff, 0); b.writeUInt16LE(f.swd & 0xffff, 2);
  b.writeUInt16LE(f.twd & 0xffff, 4); b.writeUInt16LE(f.fop & 0xffff, 6);
  b.writeBigUInt64LE(f.rip, 8); b.writeBigUInt64LE(f.rdp, 16);
  b.writeUInt32LE(f.mxcsr >>> 0, 24); b.writeUInt32LE(f.mxcsrMask >>> 0, 28);
  const put32 = (off: number, v: number[]) => v.forEach((x, i) => b.writeUInt32LE(x >>> 0, off + i * 4));
  const put64 = (off: number, v: bigint[]) => v.forEach((x, i) => b.writeBigUInt64LE(x, off + i * 8));
  put32(32, f.stSpace.slice(0, 32)); put32(160, f.xmmSpace.slice(0, 64));
  const x = f.xsave;
  if (x && b.length >= 576) {
    const { YMMH, BNDREGS, BNDCSR, OPMASK, ZMM_HI256, HI16_ZMM, PKRU } = layout();
    b.writeBigUInt64LE(x.xstateBv, 512);
    const put = (c: { off: number; len: number }, fn: () => void) => { if (has(b, c)) fn(); };
    put(YMMH, () => put32(YMMH.off, x.ymmhSpace.slice(0, 64)));
    put(BNDREGS, () => put64(BNDREGS.off, x.bndregState.slice(0, 8)));
    put(BNDCSR, () => put64(BNDCSR.off, x.bndcsrState.slice(0, 8)));
    put(OPMASK, () => put64(OPMASK.off, x.opmaskReg.slice(0, 8)));
    put(ZMM_HI256, () => put64(ZMM_HI256.off, x.zmmUpper.slice(0, 64)));
    put(HI16_ZMM, () => put64(HI16_ZMM.off, x.hi16Zmm.slice(0, 128)));
    put(PKRU, () => put32(PKRU.off, x.pkru.slice(0, 2)));
  }
  return b;
}
