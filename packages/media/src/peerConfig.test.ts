import assert from 'node:assert/strict';
import { test } from 'node:test';
import { iceOptions } from './peerConfig.js';

test('ICE: ICE-lite, no STUN wait, and sockets bound to the single host address given', () => {
  const o = iceOptions({
    rtcPortRange: [40000, 40100],
    rtcHostAddresses: ['127.0.0.1'],
    announcedIps: ['203.0.113.5'],
  });
  assert.equal(o.iceLite, true);
  assert.equal(o.iceStunGatherTimeout, 0);
  assert.deepEqual(o.icePortRange, [40000, 40100]);
  assert.deepEqual(o.iceAdditionalHostAddresses, ['127.0.0.1', '203.0.113.5']);
  assert.deepEqual(o.iceInterfaceAddresses, { udp4: '127.0.0.1' });
  assert.equal(o.iceUseIpv4, false);
  const all = iceOptions({
    rtcPortRange: undefined,
    rtcHostAddresses: undefined,
    announcedIps: [],
  });
  assert.equal(all.iceUseIpv4, undefined, 'default: every interface');
});
