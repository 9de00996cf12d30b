import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { test } from 'node:test';
import { SfuError } from '@geosfu/common';
import { clientAddress, isPrivateAddress, normalizeIp, trustedProxies } from './ip.js';

test('normalizeIp', () => {
  assert.equal(normalizeIp('198.51.100.7'), '198.51.100.7');
  assert.equal(normalizeIp('::ffff:198.51.100.7'), '198.51.100.7');
  assert.equal(normalizeIp('::FFFF:C633:6407'), '198.51.100.7');
  assert.equal(normalizeIp('0:0:0:0:0:ffff:198.51.100.7'), '198.51.100.7');
  assert.equal(normalizeIp('2001:DB8:0:0::1'), '2001:db8::1');
  assert.equal(normalizeIp('fe80::1%eth0'), 'fe80::1');
  assert.equal(normalizeIp(' 10.0.0.1 '), '10.0.0.1');
  for (const bad of ['', 'x', '1.2.3', '300.1.1.1', '::ffff:1.2.3', 'example.com']) {
    assert.equal(normalizeIp(bad), undefined, bad);
  }
});

test('isPrivateAddress', () => {
  assert.equal(isPrivateAddress('192.168.0.10'), true);
  assert.equal(isPrivateAddress('::ffff:192.168.0.10'), true);
  assert.equal(isPrivateAddress('fc00::1'), true);
  assert.equal(isPrivateAddress('198.51.100.1'), false, 'documentation ranges are not private');
  assert.equal(isPrivateAddress('2001:db8::1'), false);
  assert.equal(isPrivateAddress('garbage'), false);
});

test('isPrivateAddress agrees with a node:net BlockList of the same ranges at every edge', () => {
  const reference = new BlockList();
  for (const [net, bits] of [
    ['10.0.0.0', 8],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['0.0.0.0', 8],
  ] as const)
    reference.addSubnet(net, bits, 'ipv4');
  reference.addSubnet('fc00::', 7, 'ipv6');
  reference.addSubnet('fe80::', 10, 'ipv6');
  reference.addAddress('::1', 'ipv6');
  reference.addAddress('::', 'ipv6');
  const edges = [
    '9.255.255.255',
    '10.0.0.0',
    '10.255.255.255',
    '11.0.0.0',
    '172.15.255.255',
    '172.16.0.0',
    '172.31.255.255',
    '172.32.0.0',
    '192.167.255.255',
    '192.168.0.0',
    '192.168.255.255',
    '192.169.0.0',
    '126.255.255.255',
    '127.0.0.1',
    '127.255.255.255',
    '128.0.0.0',
    '169.253.255.255',
    '169.254.0.1',
    '169.255.0.0',
    '0.0.0.0',
    '0.255.255.255',
    '1.0.0.0',
    '255.255.255.255',
    '100.64.0.1',
    '203.0.113.9',
    '::',
    '::1',
    '::2',
    '::ffff:10.1.2.3',
    'fbff::1',
    'fc00::',
    'fd12:3456::1',
    'fdff:ffff::1',
    'fe00::1',
    'fe7f::1',
    'fe80::',
    'fe80::1%eth0',
    'febf:ffff::1',
    'fec0::1',
    'ff02::1',
    '2001:db8::1',
    '2a00:1450::1',
    '1::1',
  ];
  for (const address of edges) {
    const ip = normalizeIp(address);
    assert.ok(ip, address);
    const expected = reference.check(ip, ip.includes(':') ? 'ipv6' : 'ipv4');
    assert.equal(isPrivateAddress(address), expected, address);
  }
});

test('clientAddress: X-Forwarded-For from an untrusted peer is ignored', () => {
  assert.equal(clientAddress('198.51.100.7', '203.0.113.9', []), '198.51.100.7');
  assert.equal(clientAddress('198.51.100.7', '203.0.113.9', ['10.0.0.1']), '198.51.100.7');
  assert.equal(clientAddress('::ffff:198.51.100.7', undefined, ['10.0.0.1']), '198.51.100.7');
});

test('clientAddress: a trusted proxy is believed, right-most untrusted address wins', () => {
  // The client forged the first entry; our proxy appended the real peer.
  assert.equal(clientAddress('10.0.0.1', '1.2.3.4, 198.51.100.7', ['10.0.0.1']), '198.51.100.7');
  // Two of our proxies in a row (CIDR), the second one's address also in the header.
  assert.equal(
    clientAddress('10.0.0.1', '1.2.3.4, 198.51.100.7, 10.2.3.4', ['10.0.0.0/8']),
    '198.51.100.7',
  );
  // Several headers, IPv6 peers, ports and brackets.
  assert.equal(
    clientAddress('::ffff:10.0.0.1', ['1.2.3.4', '[2001:db8:3::5]:4711'], ['10.0.0.0/8']),
    '2001:db8:3::5',
  );
  assert.equal(clientAddress('fd00::1', '198.51.100.7:5555', ['fd00::/8']), '198.51.100.7');
  // Everything trusted: the left-most address is the best we know.
  assert.equal(clientAddress('10.0.0.1', '10.0.0.2', ['10.0.0.0/8']), '10.0.0.2');
  // Garbage stops the walk at the last address a trusted proxy vouched for.
  assert.equal(clientAddress('10.0.0.1', 'evil, unknown', ['10.0.0.1']), '10.0.0.1');
  assert.equal(
    clientAddress('10.0.0.1', 'unknown, 10.0.0.9', ['10.0.0.0/8']),
    '10.0.0.9',
    'the proxy hop before the garbage',
  );
  // An empty header changes nothing.
  assert.equal(clientAddress('10.0.0.1', '', ['10.0.0.1']), '10.0.0.1');
  // A precompiled list works the same.
  const trusted = trustedProxies(['10.0.0.1', '192.168.0.0/16']);
  assert.equal(clientAddress('192.168.5.5', '198.51.100.70', trusted), '198.51.100.70');
  assert.equal(trusted('192.169.0.1'), false);
});

test('trustedProxies rejects bad entries with CONFIG_INVALID', () => {
  for (const bad of ['10.0.0.0/33', 'proxy.local', '10.0.0.0/8/1', '::/129', '10.0.0.0/x']) {
    assert.throws(
      () => trustedProxies([bad]),
      (e: unknown) =>
        e instanceof SfuError && e.code === 'CONFIG_INVALID' && e.message.includes(bad),
      bad,
    );
  }
});
