import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeConfig } from '@geosfu/common';
import { RTCPeerConnection } from 'werift';
import {
  iceOptions,
  publisherPeerConfig,
  relayReceiverPeerConfig,
  subscriberPeerConfig,
} from './peerConfig.js';
import { TRANSPORT_CC_URI } from './TwccFeedback.js';

const LOOPBACK = { rtcPortRange: undefined, rtcHostAddresses: ['127.0.0.1'], announcedIps: [] };

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

test('subscriber offer: transport-cc on every m-line, one id per extension across the bundle', async () => {
  const pc = new RTCPeerConnection(subscriberPeerConfig(LOOPBACK));
  try {
    pc.addTransceiver('audio', { direction: 'sendonly' });
    pc.addTransceiver('video', { direction: 'sendonly' });
    const sdp = (await pc.createOffer()).sdp;
    const sections = sdp.split(/\r\n(?=m=)/).slice(1);
    assert.equal(sections.length, 2);
    // A bundle shares one header extension map in the browser (Chrome: the last m-line's):
    // one extension under two ids on two m-lines is read on one of them only (Chrome then
    // reported 4 packets in 5 lost on a clean link), one id for two extensions is worse.
    const uriById = new Map<string, string>();
    const idByUri = new Map<string, string>();
    for (const section of sections) {
      const extmaps = [...section.matchAll(/^a=extmap:(\d+) (\S+)$/gm)];
      const twcc = extmaps.find((m) => m[2] === TRANSPORT_CC_URI);
      assert.ok(twcc, `transport-cc on ${section.slice(0, 7)}`);
      for (const [, id, uri] of extmaps) {
        const known = uriById.get(id ?? '');
        assert.ok(known === undefined || known === uri, `id ${id}: ${known} and ${uri}`);
        uriById.set(id ?? '', uri ?? '');
        const knownId = idByUri.get(uri ?? '');
        assert.ok(knownId === undefined || knownId === id, `${uri}: ids ${knownId} and ${id}`);
        idByUri.set(uri ?? '', id ?? '');
      }
      assert.match(section, /^a=rtcp-fb:\d+ transport-cc$/m);
    }
  } finally {
    await pc.close();
  }
});
