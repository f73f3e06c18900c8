import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withoutCriuLock } from './netfilter.js';

const FILTER = 'table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname "lo" ip protocol tcp ct state established,new counter packets 3 bytes 172 accept\n\t\tcounter packets 0 bytes 0 drop\n\t}\n}\n';
// CRIU 4.2's lock of the namespace with --network-lock nftables, as its nftables-9.img of zdtm static/socket-tcp-nft-nfconntrack lists it.
const LOCK = (name: string, extra = '') => `table inet ${name} {\n\tchain output {\n\t\ttype filter hook output priority filter; policy drop;\n\t\tmeta mark 0x0000c114 accept\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tmeta mark 0x0000c114 accept\n${extra}\t}\n}\n`;

test('withoutCriuLock() takes CRIU\'s nftables lock table off the ruleset, as CRIU\'s unlock deletes it', () => {
  assert.equal(withoutCriuLock(FILTER + LOCK('CRIU-b0aa484f-4f64-40d6-a1')), FILTER);
  assert.equal(withoutCriuLock(LOCK('CRIU-b0aa484f-4f64-40d6-a1') + FILTER), FILTER);
});

test('withoutCriuLock() keeps a table of that name that holds more than the lock, and other tables', () => {
  const more = LOCK('CRIU-b0aa484f-4f64-40d6-a1', '\t\ttcp dport 22 accept\n');
  assert.equal(withoutCriuLock(FILTER + more), FILTER + more);
  assert.equal(withoutCriuLock(FILTER + LOCK('mine')), FILTER + LOCK('mine'));
});
