import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatInet } from './inet-socket-probe.js';

test('formatInet() writes an IPv4 address from the kernel\'s word, with its port', () => {
  assert.equal(formatInet(2, [0x0100007f], 8080), '127.0.0.1:8080');
});

test('formatInet() shortens the longest run of zero groups of an IPv6 address', () => {
  assert.equal(formatInet(10, [0, 0, 0, 0x01000000], 443), '[::1]:443');
  assert.equal(formatInet(10, [0, 0, 0, 0], 80), '[::]:80');
  assert.equal(formatInet(10, [0x000080fe, 0, 0x00000100, 0x01000000], 22), '[fe80::1:0:0:1]:22');
});
