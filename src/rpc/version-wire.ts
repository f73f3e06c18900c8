// CRIU's VERSION request and stasis's answer as bytes on the wire, for swrk's first request
// (swrk.ts), which runc sends alone: CriuReq { type: VERSION } is 08 0a; the answer is what
// server.ts's handler encodes (CriuResp { type: VERSION, success: true, version: CRIU_VERSION },
// version-wire.test.ts holds them equal).

/** CriuReq with nothing but type = VERSION (10). */
export function isVersionRequest(data: Uint8Array): boolean {
  return data.length === 2 && data[0] === 0x08 && data[1] === 0x0a;
}

/** CriuResp: type 10, success, version { major_number 4, minor_number 2, name "stasis" }. */
export const CRIU_VERSION_BYTES = Buffer.from('080a1001520c080410023206737461736973', 'hex');
