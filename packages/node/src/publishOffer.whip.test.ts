import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SfuError } from '@geosfu/common';
import {
  checkPublishOffer,
  checkViewerOffer,
  offeredTracks,
  withBundleOnlyPorts,
} from './publishOffer.js';

const offer = (...media: string[]) =>
  ['v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0', 'a=group:BUNDLE 0 1', ...media].join('\r\n');
const m = (kind: string, mid: string, direction: string, extra: string[] = [], port = 9) =>
  [
    `m=${kind} ${port} UDP/TLS/RTP/SAVPF 96`,
    `a=mid:${mid}`,
    'a=ice-ufrag:u1',
    'a=ice-pwd:p1',
    `a=${direction}`,
    ...extra,
  ].join('\r\n');
const coded = (code: string, pattern: RegExp) => (e: unknown) =>
  e instanceof SfuError && e.code === code && pattern.test(e.message);

test('WHIP: each sending audio or video m-line is a track', () => {
  const parsed = checkPublishOffer(offer(m('video', '0', 'sendonly'), m('audio', '1', 'sendrecv')));
  assert.deepEqual(offeredTracks(parsed), [
    { mid: '0', kind: 'video', source: 'camera' },
    { mid: '1', kind: 'audio', source: 'microphone' },
  ]);
});

test('WHIP: an offer that sends nothing, or sends simulcast, is refused', () => {
  const receiving = checkPublishOffer(
    offer(m('video', '0', 'recvonly'), m('audio', '1', 'recvonly')),
  );
  assert.throws(() => offeredTracks(receiving), coded('INVALID_SDP', /sends no audio or video/));
  const simulcast = checkPublishOffer(
    offer(
      m('video', '0', 'sendonly', ['a=rid:q send', 'a=rid:h send', 'a=simulcast:send q;h']),
      m('audio', '1', 'sendonly'),
    ),
  );
  assert.throws(() => offeredTracks(simulcast), coded('INVALID_SDP', /simulcast/));
});

test('WHEP: an offer must receive audio or video', () => {
  checkViewerOffer(offer(m('video', '0', 'recvonly'), m('audio', '1', 'recvonly')));
  assert.throws(
    () => checkViewerOffer(offer(m('video', '0', 'sendonly'), m('audio', '1', 'sendonly'))),
    coded('INVALID_SDP', /receives no audio or video/),
  );
  assert.throws(() => checkViewerOffer('hello'), coded('INVALID_SDP', /v=0/));
});

test('bundle-only m-lines with port 0 get port 9; others are left alone', () => {
  const sdp = offer(m('video', '0', 'sendonly'), m('audio', '1', 'sendonly', ['a=bundle-only'], 0));
  const fixed = withBundleOnlyPorts(sdp);
  assert.match(fixed, /^m=audio 9 UDP/m);
  assert.match(fixed, /^m=video 9 UDP/m);
  assert.deepEqual(
    offeredTracks(checkPublishOffer(fixed)).map((t) => t.mid),
    ['0', '1'],
  );
  // A rejected m-line (port 0 without bundle-only) stays rejected.
  const rejected = offer(m('video', '0', 'sendonly'), m('audio', '1', 'sendonly', [], 0));
  assert.equal(withBundleOnlyPorts(rejected), rejected);
});
