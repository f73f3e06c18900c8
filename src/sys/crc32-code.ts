// zlib's CRC-32 with PCLMULQDQ, about 12 GB/s here against zlib's 3.5-4.7: the sums of the
// pages files (image-sums.ts) are a whole core's work for a large dump or restore otherwise
// (0.25-0.3 s per GiB, issue 15). The bytes are tools/crc32-pclmul.c as tools/crc32-pclmul.sh
// builds it, run from a code page of stasis's own (code-page.ts); without PCLMULQDQ, zlib's.
import zlib from 'node:zlib';
import { koffi, koffiAddonFile, protoOnFirstUse, WORKER_KOFFI } from './koffi-addon.js';
import { codePage } from './code-page.js';
import { cpuid } from './cpuid.js';

const CODE = Buffer.from('89f84989f0f7d04883fa3f0f861c020000f30f6f0e660f6ec0488d7ac0f30f6f7e20f3440f6f4610f30f6f7630488d4640660fefc84883ff3f0f862e020000488d7a80660f6f05350200004889fa48c1ea06488d720248c1e6064c01c60f1f00660f6fe9660f6fdf660f6fd64883c04066410f6fe0660f3a44e80066440f3a44c011660f3a44f811660f3a44f011660f3a44e000660f3a44d800660f3a44d000660f3a44c811660fefcd66410fefe0660fefdff30f6f68c0660fefd6f3440f6f40d0f30f6f78e0f30f6f70f0660fefcd66440fefc4660feffb660feff24839f00f857affffff48c1e2064829d7660f6f159b010000660f6fc1660f3a44c200660f3a44ca11660fefc166410fefc0660f6fc8660f3a44c211660f3a44ca00660fefc8660fefcf660f6fc1660f3a44ca11660f3a44c200660fefc1660fefc64883ff0f76434889f0488d0c3e660f6fc8f30f6f204889ca4883c010660f3a44ca00660f3a44c2114829c2660fefc1660fefc44883fa0f77d4488d47f083e70f4883e0f0488d740610660f6fc8660f73d808660f6f1d28010000660f3a44ca10660f6f15fa000000660fefc8660f6fc1660fdbca660f3a440df400000000660f73d804660fefc8660f6fc1660fdbc2660f3a44c310660fdbc2660f3a44c300660fefc1660f73d804660f7ec04885ff743b4801f7660f1f4400000fb6164883c60131d0ba08000000662e0f1f84000000000089c183e001f7d8d1e9252083b8ed31c883ea0175eb4839f775cef7d0c34885d27443488d3416662e0f1f840000000000410fb6104983c00131d0ba080000009089c183e001f7d8d1e9252083b8ed31c883ea0175eb4939f075d6f7d0c34889c6e978feffff89f8c30f1f840000000000d42b4454010000009615e4c601000000d0971975010000009e00aacc00000000ffffffff00000000ffffffff000000002461cd63010000000000000000000000410671db01000000411601f701000000', 'hex');
const Crc32Fn = protoOnFirstUse('uint32 stasis_crc32(uint32 crc, const uint8_t *buf, size_t len)');
/** Below this many bytes the call through koffi costs more than it saves. */
const SMALL = 4096;

/** The code page, made on first use (0n: this CPU has no PCLMULQDQ). */
let code: { addr: bigint; fn: unknown } | null = null;

function crcCode(): { addr: bigint; fn: unknown } {
  code ??= ((cpuid(1)[2] >>> 1) & 1) === 1 ? codePage(CODE, 'CRC-32') : { addr: 0n, fn: null };
  return code;
}

/** zlib.crc32(buf, crc), faster. */
export function crc32(buf: Uint8Array, crc = 0): number {
  const { fn } = crcCode();
  if (fn === null || buf.length < SMALL) return zlib.crc32(buf, crc);
  return (koffi().call(fn, Crc32Fn(), crc >>> 0, buf, buf.length) as number) >>> 0;
}

/** The address of the code, for a worker thread's CRC32_AT_CODE (0n: none, zlib's there too). */
export function crc32CodeAddress(): bigint {
  return crcCode().addr;
}

/** What a worker thread's CRC32_AT_CODE needs in its workerData. */
export function crcWorkerData(): { from: string; crcAt: bigint; koffiAt: string | undefined } {
  return { from: import.meta.url, crcAt: crc32CodeAddress(), koffiAt: koffiAddonFile() };
}

/**
 * For a worker thread's own code (eval'd, CommonJS, with crcWorkerData() in its workerData):
 * defines `crc32(buf, crc)`, zlib's CRC-32 through the code page this process mapped.
 */
export const CRC32_AT_CODE = `
const crc32 = (() => {
  const zlib = require('node:zlib');
  if (!workerData.crcAt) return (b, c) => zlib.crc32(b, c);
  ${WORKER_KOFFI}
  // A pointer koffi can call, as code-page.ts makes it (one decoded from bytes crashes koffi.call).
  const fn = koffi.load('libc.so.6').func('void *memmove(uint64 d, uint64 s, size_t n)')(workerData.crcAt, workerData.crcAt, 0);
  const proto = koffi.proto('uint32 stasis_crc32_w(uint32 crc, const uint8_t *buf, size_t len)');
  return (b, c) => (b.length < ${SMALL} ? zlib.crc32(b, c) : koffi.call(fn, proto, c >>> 0, b, b.length) >>> 0);
})();
`;
