import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SfuError } from '@geosfu/common';
import {
  canonicalJson,
  deriveRelayKey,
  EnvelopeCodec,
  MAX_CLOCK_SKEW_MS,
  type OpenResult,
  REPLAY_WINDOW_MS,
  signEnvelope,
} from './EnvelopeCodec.js';
import { videoTrackFixture } from './messages.fixtures.js';
import { MAX_RELAY_MESSAGE_BYTES, type OfferBody } from './messages.js';

const SECRET = 'a-cluster-secret-of-at-least-32-characters';
const OTHER_SECRET = 'another-secret-of-at-least-32-characters!!';
const NOW = 1_700_000_000_000;

const offer: OfferBody = {
  room: 'r1',
  linkId: 'L1',
  sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n',
  tracks: [
    videoTrackFixture,
    {
      mid: '1',
      trackId: 'TR_a',
      participantSid: 'S1',
      identity: 'alice',
      kind: 'audio',
      source: 'microphone',
      codec: {
        mimeType: 'audio/opus',
        clockRate: 48_000,
        channels: 2,
        parameters: 'useinbandfec=1',
      },
    },
  ],
};
const close = { room: 'r1', linkId: 'L1', reason: 'no-subscribers' };

function nodes(secretB = SECRET) {
  return {
    a: new EnvelopeCodec({ nodeId: 'node-a', secret: SECRET }),
    b: new EnvelopeCodec({ nodeId: 'node-b', secret: secretB }),
  };
}

/** Parses a payload, lets `edit` change it, serializes it again (plain JSON.stringify). */
function tamper(payload: string, edit: (m: Record<string, unknown>) => void): string {
  const message = JSON.parse(payload) as Record<string, unknown>;
  edit(message);
  return JSON.stringify(message);
}

/** `payload` with one field set (undefined: removed), the signature left as it was. */
function withField(payload: string, key: string, value: unknown): string {
  return tamper(payload, (m) => {
    if (value === undefined) delete m[key];
    else m[key] = value;
  });
}

function rejected(result: OpenResult): Extract<OpenResult, { ok: false }> {
  assert.equal(result.ok, false, 'the message should have been rejected');
  return result as Extract<OpenResult, { ok: false }>;
}

describe('canonicalJson', () => {
  test('the same value gives the same bytes whatever the key order, at every depth', () => {
    const one = { b: 1, a: { y: [1, { d: 'x', c: null }], x: true }, c: 'é\u2028' };
    const two = { c: 'é\u2028', a: { x: true, y: [1, { c: null, d: 'x' }] }, b: 1 };
    assert.equal(canonicalJson(one), canonicalJson(two));
    assert.equal(
      canonicalJson(one),
      '{"a":{"x":true,"y":[1,{"c":null,"d":"x"}]},"b":1,"c":"é\u2028"}',
    );
    // It is JSON: parsing and re-serializing gives the same bytes.
    assert.equal(canonicalJson(JSON.parse(canonicalJson(one))), canonicalJson(one));
  });

  test('undefined members are left out, as JSON.stringify does; arrays keep their order', () => {
    assert.equal(canonicalJson({ a: undefined, b: [2, 1] }), '{"b":[2,1]}');
    assert.equal(canonicalJson([undefined]), '[null]');
  });

  test('refuses what has no JSON form', () => {
    assert.throws(() => canonicalJson({ n: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson({ n: Number.POSITIVE_INFINITY }), TypeError);
    assert.throws(() => canonicalJson({ n: 1n }), TypeError);
    assert.throws(() => canonicalJson({ d: new Date(0) }), TypeError);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    assert.throws(() => canonicalJson(deep), /nested deeper/);
  });
});

describe('EnvelopeCodec', () => {
  test('seal then open: an authentic offer comes out whole', () => {
    const { a, b } = nodes();
    const { id, payload } = a.seal({ type: 'offer', to: 'node-b', body: offer }, NOW);
    const result = b.open(payload, NOW + 5);
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.message, {
      v: 1,
      type: 'offer',
      id,
      from: 'node-a',
      to: 'node-b',
      ts: NOW,
      body: offer,
    });
  });

  test('the signature does not depend on key order (canonical form)', () => {
    const { a, b } = nodes();
    const { payload } = a.seal({ type: 'offer', to: 'node-b', body: offer }, NOW);
    // Another implementation may serialize in any order: reverse every object's keys.
    const reverse = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(reverse);
      if (typeof value !== 'object' || value === null) return value;
      const entries = Object.entries(value).reverse();
      return Object.fromEntries(entries.map(([k, v]) => [k, reverse(v)]));
    };
    const reordered = JSON.stringify(reverse(JSON.parse(payload)));
    assert.notEqual(reordered, payload);
    assert.ok(b.open(reordered, NOW).ok);
    // And signing equal values built in other orders gives one signature.
    const key = deriveRelayKey(SECRET);
    assert.equal(
      signEnvelope(key, { to: 'x', from: 'y', body: { b: 1, a: 2 } }),
      signEnvelope(key, { body: { a: 2, b: 1 }, from: 'y', to: 'x' }),
    );
  });

  test('a tampered body is rejected as signature', () => {
    const { a, b } = nodes();
    const { payload } = a.seal({ type: 'offer', to: 'node-b', body: offer }, NOW);
    const forged = tamper(payload, (m) => {
      (m.body as OfferBody).sdp = 'v=0\r\nforged\r\n';
    });
    const result = rejected(b.open(forged, NOW));
    assert.equal(result.reason, 'signature');
    assert.equal(result.from, 'node-a', 'the claimed sender is reported');
  });

  test('a tampered sender is rejected as signature', () => {
    const { a, b } = nodes();
    const { payload } = a.seal({ type: 'close', to: 'node-b', body: close }, NOW);
    const forged = tamper(payload, (m) => {
      m.from = 'node-c';
    });
    const result = rejected(b.open(forged, NOW));
    assert.equal(result.reason, 'signature');
    assert.equal(result.from, 'node-c');
  });

  test('a message signed with another secret is rejected as signature', () => {
    const { a, b } = nodes(OTHER_SECRET);
    const { payload } = a.seal({ type: 'close', to: 'node-b', body: close }, NOW);
    assert.equal(rejected(b.open(payload, NOW)).reason, 'signature');
  });

  test('unsigned, or with a signature that is not hex, is rejected as signature', () => {
    const { a, b } = nodes();
    const { payload } = a.seal({ type: 'close', to: 'node-b', body: close }, NOW);
    const unsigned = rejected(b.open(withField(payload, 'sig', undefined), NOW));
    assert.deepEqual([unsigned.reason, unsigned.detail], ['signature', 'unsigned']);
    const short = rejected(b.open(withField(payload, 'sig', 'abcd'), NOW));
    assert.deepEqual(
      [short.reason, short.detail],
      ['signature', 'the signature is not 64 hex digits'],
    );
    // The genuine one still passes: the rejected copies were not remembered as seen.
    assert.ok(b.open(payload, NOW).ok);
  });

  test('a stale or future timestamp is rejected as stale; within the skew is fine', () => {
    const { a, b } = nodes();
    const seal = () => a.seal({ type: 'close', to: 'node-b', body: close }, NOW).payload;
    assert.equal(rejected(b.open(seal(), NOW + MAX_CLOCK_SKEW_MS + 1)).reason, 'stale');
    assert.equal(rejected(b.open(seal(), NOW - MAX_CLOCK_SKEW_MS - 1)).reason, 'stale');
    assert.ok(b.open(seal(), NOW + MAX_CLOCK_SKEW_MS).ok);
    assert.ok(b.open(seal(), NOW - MAX_CLOCK_SKEW_MS).ok);
  });

  test('a duplicate id is rejected as duplicate while remembered, then stale', () => {
    const { a, b } = nodes();
    const { payload } = a.seal({ type: 'close', to: 'node-b', body: close }, NOW);
    assert.ok(b.open(payload, NOW).ok);
    assert.equal(rejected(b.open(payload, NOW + 1)).reason, 'duplicate');
    assert.equal(rejected(b.open(payload, NOW + MAX_CLOCK_SKEW_MS)).reason, 'duplicate');
    // Past the window the id is forgotten, but the timestamp check catches it.
    assert.equal(rejected(b.open(payload, NOW + REPLAY_WINDOW_MS + 1)).reason, 'stale');
    // Another message with the same id (an answer whose id a forger reused) too.
    const reused = a.seal({ type: 'close', to: 'node-b', body: close, id: 'x'.repeat(22) }, NOW);
    const again = a.seal({ type: 'close', to: 'node-b', body: close, id: 'x'.repeat(22) }, NOW + 9);
    const c = new EnvelopeCodec({ nodeId: 'node-b', secret: SECRET });
    assert.ok(c.open(reused.payload, NOW + 10).ok);
    assert.equal(rejected(c.open(again.payload, NOW + 10)).reason, 'duplicate');
  });

  test("a request's retry (same id, new timestamp) passes; the very same bytes do not", () => {
    const { a, b } = nodes();
    const first = a.seal({ type: 'offer', to: 'node-b', body: offer }, NOW);
    const retry = a.seal({ type: 'offer', to: 'node-b', body: offer, id: first.id }, NOW + 300);
    assert.ok(b.open(first.payload, NOW + 1).ok);
    const second = b.open(retry.payload, NOW + 301);
    assert.ok(second.ok && second.message.id === first.id);
    assert.equal(rejected(b.open(first.payload, NOW + 302)).reason, 'duplicate');
    assert.equal(rejected(b.open(retry.payload, NOW + 303)).reason, 'duplicate');
  });

  test('a message for another node is rejected as wrong-recipient', () => {
    const { a, b } = nodes();
    const { payload } = a.seal({ type: 'close', to: 'node-c', body: close }, NOW);
    const result = rejected(b.open(payload, NOW));
    assert.equal(result.reason, 'wrong-recipient');
    assert.equal(result.from, 'node-a');
  });

  test('garbage, bad envelopes and oversized messages are rejected as malformed', () => {
    const { a, b } = nodes();
    const good = a.seal(
      {
        type: 'answer',
        to: 'node-b',
        body: { room: 'r', linkId: 'L', sdp: 'v=0' },
        replyTo: 'r'.repeat(22),
      },
      NOW,
    ).payload;
    const cases: [string, string][] = [
      ['not json', '{'],
      ['not an object', '42'],
      ['another version', withField(good, 'v', 2)],
      ['unknown type', withField(good, 'type', 'hello')],
      ['answer without replyTo', withField(good, 'replyTo', undefined)],
      [
        'close with replyTo',
        a.seal({ type: 'close', to: 'node-b', body: close, replyTo: 'q'.repeat(22) }, NOW).payload,
      ],
      ['unknown field', withField(good, 'extra', 1)],
      ['bad node id', withField(good, 'from', 'no spaces')],
      ['too large', `{"pad":"${'x'.repeat(MAX_RELAY_MESSAGE_BYTES)}"}`],
    ];
    for (const [what, raw] of cases) {
      assert.equal(rejected(b.open(raw, NOW)).reason, 'malformed', what);
    }
    assert.match(rejected(b.open(cases[8]?.[1] ?? '', NOW)).detail, /over the 262144-byte limit/);
  });

  test('an authentic request with a bad body is malformed, and marked for an error reply', () => {
    const { a, b } = nodes();
    const bad = { ...offer, tracks: [{ ...offer.tracks[0], mid: 'two words' }] };
    const { id, payload } = a.seal({ type: 'offer', to: 'node-b', body: bad }, NOW);
    const result = rejected(b.open(payload, NOW));
    assert.equal(result.reason, 'malformed');
    assert.deepEqual(result.request, { id, from: 'node-a' });
    assert.match(result.detail, /mid/);
    // A close with a bad body is dropped without a reply (there is nobody waiting).
    const badClose = a.seal(
      { type: 'close', to: 'node-b', body: { ...close, reason: 'No!' } },
      NOW,
    );
    assert.equal(rejected(b.open(badClose.payload, NOW)).request, undefined);
  });

  test('track kind and codec must agree; mids are unique', () => {
    const { a, b } = nodes();
    const first = offer.tracks[0];
    assert.ok(first);
    const mismatch = {
      ...offer,
      tracks: [{ ...first, codec: { mimeType: 'audio/opus', clockRate: 48_000 } }],
    };
    const twice = { ...offer, tracks: [first, { ...first, trackId: 'TR_2' }] };
    for (const body of [mismatch, twice]) {
      const { payload } = a.seal({ type: 'offer', to: 'node-b', body }, NOW);
      assert.equal(rejected(b.open(payload, NOW)).reason, 'malformed');
    }
  });

  test('sealing a message over the size cap throws MESSAGE_TOO_LARGE', () => {
    const { a } = nodes();
    const huge = { ...offer, sdp: 'a'.repeat(MAX_RELAY_MESSAGE_BYTES) };
    assert.throws(
      () => a.seal({ type: 'offer', to: 'node-b', body: huge }, NOW),
      (error: SfuError) => {
        assert.equal(error.code, 'MESSAGE_TOO_LARGE');
        assert.match(error.message, /over the 262144-byte limit/);
        return true;
      },
    );
  });

  test('a short secret or a bad node id is a configuration error', () => {
    for (const options of [
      { nodeId: 'node-a', secret: 'short' },
      { nodeId: 'node a', secret: SECRET },
    ]) {
      assert.throws(
        () => new EnvelopeCodec(options),
        (error: SfuError) => error.code === 'CONFIG_INVALID',
      );
    }
  });
});
