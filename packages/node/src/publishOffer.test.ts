import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SfuError } from '@geosfu/common';
import {
  checkPublishOffer,
  checkTrackLayers,
  type PublishOffer,
  simulcastSendRids,
} from './publishOffer.js';

const offer = (head: string, ...media: string[]) =>
  ['v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0', head, ...media].filter(Boolean).join('\r\n');
const m = (kind: string, mid: string, port = 9, ufrag = 'u1') =>
  [
    `m=${kind} ${port} UDP/TLS/RTP/SAVPF 96`,
    `a=mid:${mid}`,
    `a=ice-ufrag:${ufrag}`,
    'a=ice-pwd:p1',
    'a=sendonly',
  ].join('\r\n');

const rejects = (sdp: string, pattern: RegExp, previous?: PublishOffer) =>
  assert.throws(
    () => checkPublishOffer(sdp, previous),
    (e: unknown) => e instanceof SfuError && e.code === 'INVALID_SDP' && pattern.test(e.message),
  );

test('one BUNDLE group with every live m-line is accepted', () => {
  const parsed = checkPublishOffer(offer('a=group:BUNDLE 0 1', m('video', '0'), m('audio', '1')));
  assert.deepEqual(parsed.ice, { ufrag: 'u1', pwd: 'p1' });
  assert.deepEqual(
    parsed.sections.map((s) => [s.kind, s.mid, s.direction, s.port]),
    [
      ['video', '0', 'sendonly', 9],
      ['audio', '1', 'sendonly', 9],
    ],
  );
  // A rejected m-line may leave the group (RFC 8843 7.3.3).
  checkPublishOffer(offer('a=group:BUNDLE 0', m('video', '0'), m('audio', '1', 0)));
});

test('BUNDLE shapes werift would give a second transport are refused', () => {
  rejects(offer('a=group:BUNDLE 0\r\na=group:BUNDLE 0', m('video', '0')), /exactly one/);
  rejects(
    offer('a=group:BUNDLE 0\r\na=group:BUNDLE 1', m('video', '0'), m('audio', '1')),
    /exactly one/,
  );
  rejects(offer('', m('video', '0')), /exactly one/);
  rejects(offer('a=group:BUNDLE 0', m('video', '0'), m('audio', '1')), /not in the BUNDLE/);
  rejects(offer('a=group:BUNDLE 0 7', m('video', '0')), /names "7"/);
  rejects(offer('a=group:BUNDLE 0 1', m('video', '0'), m('audio', '0')), /two m-lines/);
  rejects(offer('a=group:BUNDLE 0 1', m('video', '0'), m('audio', '1', 9, 'u2')), /different ICE/);
});

test('a renegotiation keeps the ICE credentials and the m-lines, in order', () => {
  const first = checkPublishOffer(offer('a=group:BUNDLE 0 1', m('video', '0'), m('audio', '1')));
  checkPublishOffer(offer('a=group:BUNDLE 0 1', m('video', '0'), m('audio', '1')), first);
  const added = offer('a=group:BUNDLE 0 1 2', m('video', '0'), m('audio', '1'), m('video', '2'));
  checkPublishOffer(added, first);
  const restart = offer('a=group:BUNDLE 0 1', m('video', '0', 9, 'u2'), m('audio', '1', 9, 'u2'));
  rejects(restart, /ICE restart/, first);
  rejects(offer('a=group:BUNDLE 0', m('video', '0')), /never removed/, first);
  rejects(offer('a=group:BUNDLE 1 0', m('audio', '1'), m('video', '0')), /in their order/, first);
  // A rejected m-line may be recycled for a new mid (RFC 8829 section 5.2.2).
  const stopped = checkPublishOffer(
    offer('a=group:BUNDLE 0', m('video', '0'), m('audio', '1', 0)),
    first,
  );
  checkPublishOffer(offer('a=group:BUNDLE 0 3', m('video', '0'), m('video', '3')), stopped);
});

const simulcastVideo = (mid: string, rids: string[], simulcast = rids.join(';')) =>
  [
    m('video', mid),
    ...rids.map((rid) => `a=rid:${rid} send`),
    `a=simulcast:send ${simulcast}`,
  ].join('\r\n');

const layer = (rid: string, width: number) => ({
  rid,
  width,
  height: (width * 9) / 16,
  maxBitrate: width * 1000,
});

test('simulcast rids are read from a=simulcast:send, each with its a=rid line', () => {
  assert.deepEqual(simulcastSendRids('send q;h;f'), ['q', 'h', 'f']);
  assert.deepEqual(simulcastSendRids('send ~q;h,h2;f recv r'), ['q', 'h', 'f']);
  assert.deepEqual(simulcastSendRids('recv a;b'), []);
  const parsed = checkPublishOffer(
    offer('a=group:BUNDLE 0 1', simulcastVideo('0', ['q', 'h', 'f']), m('audio', '1')),
  );
  assert.deepEqual(
    parsed.sections.map((s) => s.simulcast),
    [['q', 'h', 'f'], []],
  );
  rejects(
    offer(
      'a=group:BUNDLE 0',
      [m('video', '0'), 'a=rid:q send', 'a=simulcast:send q;h'].join('\r\n'),
    ),
    /rid "h" without an "a=rid:h send" line/,
  );
  rejects(
    offer('a=group:BUNDLE 0', simulcastVideo('0', ['a', 'b', 'c', 'd'])),
    /4 simulcast layers; at most 3/,
  );
  rejects(
    offer('a=group:BUNDLE 0 1', simulcastVideo('0', ['q', 'h']), simulcastVideo('1', ['h', 'f'])),
    /rid "h" is on m-lines "0" and "1"/,
  );
  rejects(
    offer('a=group:BUNDLE 0', [m('audio', '0'), 'a=rid:q send', 'a=simulcast:send q'].join('\r\n')),
    /simulcast is for video/,
  );
});

test("a track's layers must be its m-line's simulcast rids", () => {
  const parsed = checkPublishOffer(
    offer(
      'a=group:BUNDLE 0 1 2',
      simulcastVideo('0', ['f', 'h', 'q']),
      m('video', '1'),
      m('audio', '2'),
    ),
  );
  const [sim, plain, audio] = parsed.sections;
  assert.ok(sim && plain && audio);
  const three = [layer('q', 320), layer('h', 640), layer('f', 1280)];
  // Matching rids in another order, and plain tracks without layers, pass.
  checkTrackLayers({ mid: '0', kind: 'video', layers: three }, sim);
  checkTrackLayers({ mid: '1', kind: 'video' }, plain);
  checkTrackLayers({ mid: '2', kind: 'audio' }, audio);

  const fails = (fn: () => void, code: string, pattern: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof SfuError && e.code === code && pattern.test(e.message),
    );
  fails(
    () =>
      checkTrackLayers(
        { mid: '0', kind: 'video', layers: [layer('q', 320), layer('x', 640), layer('f', 1280)] },
        sim,
      ),
    'INVALID_SDP',
    /declared but not in the offer: x; in the offer but not declared: h/,
  );
  fails(
    () => checkTrackLayers({ mid: '0', kind: 'video' }, sim),
    'INVALID_SDP',
    /describe the layers/,
  );
  fails(
    () => checkTrackLayers({ mid: '1', kind: 'video', layers: three }, plain),
    'INVALID_SDP',
    /no a=simulcast:send line/,
  );
  fails(
    () => checkTrackLayers({ mid: '2', kind: 'audio', layers: three }, audio),
    'BAD_REQUEST',
    /only a video track has simulcast layers/,
  );
});
