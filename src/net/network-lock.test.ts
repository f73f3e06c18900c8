import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeConn, iptablesRules, nftTableName, passMarkedRules } from './network-lock.js';

const lo4 = [0x0100007f], lo6 = [0, 0, 0, 0x01000000], mapped = (w: number) => [0, 0, 0xffff0000, w];

test('iptablesRules() writes CRIU\'s two DROP rules of a connection, the peer\'s packets in INPUT and ours in OUTPUT', () => {
  const r = iptablesRules({ family: 2, src: lo4, srcPort: 8880, dst: [0x0200000a], dstPort: 40000 }, '-I');
  assert.equal(r.prog, 'iptables-restore');
  assert.equal(r.text, [
    '*filter',
    '-I INPUT -p tcp -m mark ! --mark 0xC114 -s 10.0.0.2 --sport 40000 -d 127.0.0.1 --dport 8880 -j DROP',
    '-I OUTPUT -p tcp -m mark ! --mark 0xC114 -s 127.0.0.1 --sport 8880 -d 10.0.0.2 --dport 40000 -j DROP',
    'COMMIT', '',
  ].join('\n'));
  assert.equal(iptablesRules({ family: 10, src: lo6, srcPort: 1, dst: lo6, dstPort: 2 }, '-D').prog, 'ip6tables-restore');
});

test('an IPv4-mapped IPv6 connection is locked and named as the IPv4 connection it is on the wire', () => {
  const c = { family: 10, src: mapped(0x0100007f), srcPort: 5, dst: mapped(0x0100007f), dstPort: 6 };
  assert.equal(iptablesRules(c, '-I').prog, 'iptables-restore');
  assert.match(iptablesRules(c, '-I').text, /-s 127\.0\.0\.1 --sport 6 -d 127\.0\.0\.1 --dport 5/);
  assert.equal(describeConn(c), '127.0.0.1:5 - 127.0.0.1:6');
  assert.equal(describeConn({ family: 10, src: lo6, srcPort: 1, dst: lo6, dstPort: 2 }), '[0:0:0:0:0:0:0:1]:1 - [0:0:0:0:0:0:0:1]:2');
});

test('nftTableName() is CRIU-<pid> for stasis\'s images and CRIU\'s run id, cut to 31 characters, for CRIU\'s', () => {
  assert.equal(nftTableName(812), 'inet CRIU-812');
  assert.equal(nftTableName(812, '3c9cce08-7549-46b6-ae32-6b8828b31346'), 'inet CRIU-3c9cce08-7549-46b6-ae');
});

test('passMarkedRules() accepts the packets stasis marks ahead of every rule, in INPUT and OUTPUT, as CRIU\'s CRIU chain does', () => {
  assert.equal(passMarkedRules('-I'), '-I INPUT -m mark --mark 0xC114 -j ACCEPT\n-I OUTPUT -m mark --mark 0xC114 -j ACCEPT\n');
  assert.match(passMarkedRules('-D'), /^-D INPUT .*\n-D OUTPUT .*\n$/);
});
