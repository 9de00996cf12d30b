import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeConfig } from '@geosfu/common';
import { iceOptions, publisherPeerConfig, relayReceiverPeerConfig } from './peerConfig.js';
import { TRANSPORT_CC_URI } from './TwccFeedback.js';

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

test('publishers negotiate transport-cc (extension and feedback); relay receivers do not', () => {
  const config = {
    rtcPortRange: undefined,
    rtcHostAddresses: undefined,
    announcedIps: [],
  } as unknown as NodeConfig;
  const publisher = publisherPeerConfig(config);
  const relay = relayReceiverPeerConfig(config);
  const hasTcc = (c: typeof publisher, kind: 'audio' | 'video') =>
    (c.headerExtensions?.[kind] ?? []).some((e) => e.uri === TRANSPORT_CC_URI) &&
    (c.codecs?.[kind] ?? []).every((codec) =>
      codec.rtcpFeedback.some((f) => f.type === 'transport-cc'),
    );
  assert.equal(hasTcc(publisher, 'video'), true);
  assert.equal(hasTcc(publisher, 'audio'), true);
  assert.equal(hasTcc(relay, 'video'), false);
  assert.equal(hasTcc(relay, 'audio'), false);
  // The REMB the node sends stays negotiated: it caps the publisher's estimate.
  assert.ok(
    publisher.codecs?.video?.every((c) => c.rtcpFeedback.some((f) => f.type === 'goog-remb')),
  );
});
