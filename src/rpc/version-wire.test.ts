import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import { CriuReqSchema, CriuReqType, CriuRespSchema } from '../image/gen/stasis/rpc_pb.js';
import { CRIU_VERSION } from './server.js';
import { CRIU_VERSION_BYTES, isVersionRequest } from './version-wire.js';

test('swrk\'s VERSION bytes are what the protobuf encoder makes of the request and of the server\'s answer', () => {
  assert.equal(isVersionRequest(toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.VERSION }))), true);
  assert.equal(isVersionRequest(toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.VERSION, keepOpen: true }))), false);
  assert.equal(isVersionRequest(toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.CHECK }))), false);
  const resp = toBinary(CriuRespSchema, create(CriuRespSchema, { type: CriuReqType.VERSION, success: true, version: CRIU_VERSION }));
  assert.equal(Buffer.from(resp).toString('hex'), CRIU_VERSION_BYTES.toString('hex'));
});
