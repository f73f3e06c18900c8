// CPUID, for what only the CPU knows: where each XSAVE component sits in the standard
// (non-compacted) format ptrace and signal frames use. Intel and AMD place AVX-512's parts
// differently (AMD has no MPX, so its opmask is at 832, not 1088): fixed offsets would read
// another component's bytes. The instruction runs in a page of executable code of our own,
// called through koffi.
import { koffi, protoOnFirstUse } from './koffi-addon.js';
import { codePage } from './code-page.js';

// push rbx; mov eax, edi; mov ecx, esi; mov r8, rdx; cpuid; mov [r8], eax; mov [r8+4], ebx;
// mov [r8+8], ecx; mov [r8+12], edx; pop rbx; ret
const CODE = Buffer.from('5389f889f14989d00fa241890041895804418948084189500c5bc3', 'hex');
const CpuidFn = protoOnFirstUse('void stasis_cpuid(uint32 leaf, uint32 sub, _Out_ uint32 *out)');

/** The code page, made on first use: a constant of the machine, like the CPU it asks. */
let fn: unknown = null;

function cpuidFn(): unknown {
  fn ??= codePage(CODE, 'CPUID').fn;
  return fn;
}

/** eax, ebx, ecx, edx of CPUID(leaf, subleaf). */
export function cpuid(leaf: number, sub = 0): [number, number, number, number] {
  const out = new Uint32Array(4);
  koffi().call(cpuidFn(), CpuidFn(), leaf, sub, out);
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

/** Offset and size of XSAVE component `i` (2: AVX, 5-7: AVX-512, 9: PKRU) in the standard format; size 0 when absent. */
export function xstateComponent(i: number): { off: number; len: number } {
  const [size, offset] = cpuid(0xd, i);
  return { off: offset, len: size };
}
